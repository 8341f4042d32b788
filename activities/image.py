"""Activities of the image phase: start the image build (create-or-get) and follow it."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import JobRef, StepReply, for_job, job_id_of, reply
from shared.pipeline import steps
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.START_IMAGE)
@for_job
def start_image(payload: JobRef) -> StepReply:
    return reply(steps.start_image(get_services(), job_id_of(payload)))


@bp.activity_trigger(input_name="payload", activity=names.CHECK_IMAGE)
@for_job
def check_image(payload: JobRef) -> StepReply:
    return reply(steps.check_image(get_services(), job_id_of(payload)))
