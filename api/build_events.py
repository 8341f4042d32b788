"""POST /v1/jobs/{id}/build-events: the build runner's notices, authenticated with the job's
own proxy token (never an API key: the runner has none).

``progress`` folds the log written so far into the job's progress; ``finished`` also frees the
job's build slot, tells the orchestration at once (``build_finished``) and wakes the next
queued job. Notices are hints: the orchestration re-checks the build itself, and the reconciler
raises the same event when a notice is lost, so a forged or repeated notice changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.edge import check_request_line, translate
from api.http import ApiError, ErrorCode, json_response, unauthorized, validation_error
from orchestrators import signals
from shared.domain.models import JobStatus
from shared.log_context import job_context
from shared.pipeline import lifecycle, steps
from shared.services import Services, get_services

log = logging.getLogger("foundry.api")
bp = df.Blueprint()
EVENTS = ("progress", "finished")
MAX_NOTICE_BYTES = 4096


@bp.route(
    route="v1/jobs/{job_id}/build-events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS
)
@bp.durable_client_input(client_name="client")
async def build_event(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    job_id = req.route_params.get("job_id", "")
    with job_context(job_id or "-"):
        try:
            check_request_line(req)
            event = _parse(req.get_body())
            svc = await asyncio.to_thread(get_services)
            finished = await asyncio.to_thread(_apply, svc, job_id, _bearer(req), event)
            if finished:
                await _signal_finished(svc, client, job_id)
            return json_response(202, {"schema_version": 1, "job_id": job_id, "event": event})
        except Exception as exc:  # noqa: BLE001 - the edge turns everything into the envelope
            return translate(exc)


def _bearer(req: func.HttpRequest) -> str:
    auth = req.headers.get("authorization") or ""
    if not auth.startswith("Bearer "):
        raise unauthorized()
    return auth[len("Bearer ") :].strip()


def _parse(body: bytes) -> str:
    if len(body) > MAX_NOTICE_BYTES:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, "a build notice is a small JSON object")
    try:
        raw: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise validation_error("malformed or incomplete request body") from None
    event = raw.get("event") if isinstance(raw, dict) else None
    if event not in EVENTS:
        raise validation_error(f"event must be one of {', '.join(EVENTS)}")
    return str(event)


def _apply(svc: Services, job_id: str, token: str, event: str) -> bool:
    """Fold progress; on ``finished`` free the slot. True when the orchestration should be
    told. The token must be live and belong to this very job."""
    info = svc.tokens.verify(token)
    if info is None or info.job_id != job_id:
        raise unauthorized()
    job = svc.jobs.find_job(job_id)
    if job is None or job.status is not JobStatus.BUILDING:
        return False  # already past the build (or gone): nothing to fold or wake
    steps.follow_stream(svc, job)
    if event != "finished":
        return False
    svc.slots.release(job_id)
    return True


async def _signal_finished(
    svc: Services, client: df.DurableOrchestrationClient, job_id: str
) -> None:
    try:
        await signals.build_finished(client, job_id, by="runner")
    except Exception:  # noqa: BLE001 - the reconciler raises it again from the backend's state
        log.warning("could not signal build_finished to %s; the reconciler will", job_id)
    queued = await asyncio.to_thread(lifecycle.next_in_queue, svc)
    await signals.wake_queued(client, queued)
