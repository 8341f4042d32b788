"""Compensation activities: terminal failure and cancel. Both are idempotent teardown."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import Reply, for_job, reply
from shared.domain.payloads import FailRequest, JobRef
from shared.pipeline import lifecycle
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.FAIL_JOB)
@for_job
def fail_job(payload: FailRequest) -> Reply:
    return reply(lifecycle.fail_job(get_services(), payload.job_id, payload.code, payload.message))


@bp.activity_trigger(input_name="payload", activity=names.COMPENSATE_CANCEL)
@for_job
def compensate_cancel(payload: JobRef) -> Reply:
    return reply(lifecycle.compensate_cancel(get_services(), payload.job_id))
