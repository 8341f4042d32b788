"""Activities of the build phase: claim a slot and start, check for the end, time out."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import Reply, for_job, reply
from shared.domain.payloads import JobRef
from shared.pipeline import steps
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.START_BUILD)
@for_job
def start_build(payload: JobRef) -> Reply:
    return reply(steps.start_build(get_services(), payload.job_id))


@bp.activity_trigger(input_name="payload", activity=names.CHECK_BUILD)
@for_job
def check_build(payload: JobRef) -> Reply:
    return reply(steps.check_build(get_services(), payload.job_id))


@bp.activity_trigger(input_name="payload", activity=names.STOP_BUILD_FOR_TIMEOUT)
@for_job
def stop_build_for_timeout(payload: JobRef) -> Reply:
    return reply(steps.stop_build_for_timeout(get_services(), payload.job_id))
