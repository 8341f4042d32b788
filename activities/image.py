"""Activity of the image phase: follow the image build, then deploy the preview."""

from __future__ import annotations

import azure.durable_functions as df

from activities import names
from activities._payload import Reply, for_job, reply
from shared.domain.payloads import JobRef
from shared.pipeline import steps
from shared.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.CHECK_IMAGE)
@for_job
def check_image(payload: JobRef) -> Reply:
    return reply(steps.check_image(get_services(), payload.job_id))
