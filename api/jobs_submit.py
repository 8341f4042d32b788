"""POST /v1/jobs: validate, accept (idempotently), start the job's orchestration."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from api.auth import Principal
from api.edge import handle_async
from api.http import forbidden, json_response
from api.views import accepted_view, poll_url
from orchestrators import signals
from shared.domain.validation import parse_submit
from shared.pipeline.submission import submit_job as accept_job
from shared.services import Services

log = logging.getLogger("foundry.api")
bp = df.Blueprint()


@bp.route(route="v1/jobs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def submit_job(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    async def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        # Validating up to max_input_bytes of JSON is CPU work: keep it off the worker's loop.
        body = await asyncio.to_thread(parse_submit, req.get_body(), svc.settings)
        if not principal.may_use_owner(body.owner):
            raise forbidden("this key may not submit jobs for that owner")
        if not principal.may_use_org(body.org_slug):
            raise forbidden("this key may not submit jobs for that org")
        outcome = await asyncio.to_thread(accept_job, svc, body, actor=principal.key_id)
        if outcome.created:
            try:
                await signals.start(client, outcome.job.job_id)
            except Exception:
                log.exception("could not start orchestration for %s", outcome.job.job_id)
        return json_response(
            202,
            accepted_view(outcome.job, queue_position=outcome.queue_position),
            headers={"Location": poll_url(outcome.job.job_id), "Retry-After": "5"},
        )

    return await handle_async(req, "jobs:write", run)
