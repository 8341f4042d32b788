"""Compensation activities: terminal failure and cancel. Both are idempotent teardown."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import JobFailure, JobRef, StepReply, for_job, job_id_of, reply
from shared.pipeline import lifecycle
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.FAIL_JOB)
@for_job
def fail_job(payload: JobFailure) -> StepReply:
    return reply(
        lifecycle.fail_job(
            get_services(), job_id_of(payload), str(payload["code"]), str(payload["message"])
        )
    )


@bp.activity_trigger(input_name="payload", activity=names.COMPENSATE_CANCEL)
@for_job
def compensate_cancel(payload: JobRef) -> StepReply:
    return reply(lifecycle.compensate_cancel(get_services(), job_id_of(payload)))
