"""Activities of the preview phase: wait for health, report ready."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import Reply, for_job, reply
from shared.domain.payloads import FinalizeRequest, JobRef
from shared.pipeline import steps
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.CHECK_PREVIEW)
@for_job
def check_preview(payload: JobRef) -> Reply:
    return reply(steps.check_preview(get_services(), payload.job_id))


@bp.activity_trigger(input_name="payload", activity=names.FINALIZE_READY)
@for_job
def finalize_ready(payload: FinalizeRequest) -> Reply:
    return reply(steps.finalize_ready(get_services(), payload.job_id, payload.preview_url))
