"""Activities of the build phase: slot, start (grant + token + execution), follow, time out."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import JobRef, StepReply, for_job, job_id_of, reply
from shared.pipeline import steps
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.CLAIM_BUILD_SLOT)
@for_job
def claim_build_slot(payload: JobRef) -> StepReply:
    return reply(steps.claim_build_slot(get_services(), job_id_of(payload)))


@bp.activity_trigger(input_name="payload", activity=names.START_BUILD)
@for_job
def start_build(payload: JobRef) -> StepReply:
    return reply(steps.start_build(get_services(), job_id_of(payload)))


@bp.activity_trigger(input_name="payload", activity=names.CHECK_BUILD)
@for_job
def check_build(payload: JobRef) -> StepReply:
    return reply(steps.check_build(get_services(), job_id_of(payload)))


@bp.activity_trigger(input_name="payload", activity=names.STOP_BUILD_FOR_TIMEOUT)
@for_job
def stop_build_for_timeout(payload: JobRef) -> StepReply:
    return reply(steps.stop_build_for_timeout(get_services(), job_id_of(payload)))
