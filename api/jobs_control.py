"""POST /v1/jobs/{id}/cancel and DELETE /v1/jobs/{id}/preview."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from api.auth import Principal
from api.edge import handle, handle_async, load_visible_job
from api.http import json_response, validation_error
from api.views import job_view
from orchestrators import signals
from shared.domain.models import JobRecord, JobStatus
from shared.errors import IllegalTransition
from shared.pipeline import lifecycle
from shared.services import Services

log = logging.getLogger("foundry.api")
bp = df.Blueprint()


@bp.route(route="v1/jobs/{job_id}/cancel", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def cancel_job(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    async def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        job_id = req.route_params["job_id"]
        job = await asyncio.to_thread(load_visible_job, svc, job_id, principal)
        if job.status.is_terminal:
            raise validation_error("job is already in a terminal state")
        job = await asyncio.to_thread(_mark_canceled, svc, job_id, principal.key_id)
        if job.status is JobStatus.CANCELED:
            try:
                await signals.cancel(client, job_id, by=principal.key_id)
            except Exception:  # noqa: BLE001 - the reconciler compensates orphaned cancels
                log.warning("could not signal orchestration %s; reconciler will clean up", job_id)
            queued = await asyncio.to_thread(lifecycle.next_in_queue, svc)
            await signals.wake_queued(client, queued)
        return json_response(200, job_view(job))

    return await handle_async(req, "jobs:write", run)


def _mark_canceled(svc: Services, job_id: str, actor: str) -> JobRecord:
    try:
        job = lifecycle.cancel_job(svc, job_id)
    except IllegalTransition:  # went terminal in between: report the current state
        return svc.jobs.get_job(job_id)
    svc.tokens.revoke_job(job_id)  # cheapest and most important part of cleanup: do it now
    svc.audit.record("job.canceled", job_id=job_id, actor=actor)
    return job


@bp.route(route="v1/jobs/{job_id}/preview", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
def delete_preview(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        job = load_visible_job(svc, req.route_params["job_id"], principal)
        if job.status is not JobStatus.READY:
            raise validation_error("job has no active preview")
        try:
            lifecycle.expire_job(
                svc, job.job_id, reason="preview deleted by caller", clear_preview=True
            )
        except IllegalTransition:
            raise validation_error("job has no active preview") from None
        return func.HttpResponse(status_code=204)

    return handle(req, "jobs:write", run)
