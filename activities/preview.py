"""Activities of the preview phase: deploy, wait for health, report ready."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import (
    JobRef,
    PreviewStart,
    ReadyReport,
    StepReply,
    for_job,
    job_id_of,
    reply,
)
from shared.pipeline import steps
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.START_PREVIEW)
@for_job
def start_preview(payload: PreviewStart) -> StepReply:
    return reply(steps.start_preview(get_services(), job_id_of(payload), str(payload["image_ref"])))


@bp.activity_trigger(input_name="payload", activity=names.CHECK_PREVIEW)
@for_job
def check_preview(payload: JobRef) -> StepReply:
    return reply(steps.check_preview(get_services(), job_id_of(payload)))


@bp.activity_trigger(input_name="payload", activity=names.FINALIZE_READY)
@for_job
def finalize_ready(payload: ReadyReport) -> StepReply:
    return reply(
        steps.finalize_ready(get_services(), job_id_of(payload), str(payload["preview_url"]))
    )
