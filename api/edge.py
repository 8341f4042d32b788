"""What every /v1 handler does at the edge: authenticate, authorise, translate errors."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

import azure.functions as func

from api.auth import Authenticator, Principal
from api.http import ApiError, ErrorCode, error_response, forbidden, not_found, unauthorized
from api.routing import MAX_URL_BYTES, url_bytes
from shared.domain.ids import is_job_id
from shared.domain.models import JobRecord
from shared.errors import (
    ConfigurationError,
    FoundryError,
    NotFound,
    Refused,
    TransientBackendError,
)
from shared.log_context import job_context
from shared.services import Services, get_services

log = logging.getLogger("foundry.api")

SyncHandler = Callable[[func.HttpRequest, Principal, Services], func.HttpResponse]
AsyncHandler = Callable[[func.HttpRequest, Principal, Services], Awaitable[func.HttpResponse]]
PublicHandler = Callable[[func.HttpRequest], func.HttpResponse]


@functools.lru_cache(maxsize=4)
def _authenticator(raw_keys: str) -> Authenticator:
    return Authenticator(raw_keys)


def authorise(req: func.HttpRequest, svc: Services, scope: str) -> Principal:
    principal = _authenticator(svc.settings.api_keys).authenticate(req.headers)
    if principal is None:
        raise unauthorized()
    if not principal.allows(scope):
        raise forbidden(f"this key lacks the {scope} scope")
    return principal


def check_request_line(req: func.HttpRequest) -> None:
    """Refuse a URL longer than the host's front end would pass (see ``api.routing``)."""
    if url_bytes(req.url) > MAX_URL_BYTES:
        raise ApiError(414, ErrorCode.URI_TOO_LONG, f"the URL is longer than {MAX_URL_BYTES} bytes")


#: The one table from a domain refusal's code to its HTTP status (each code is an ``ErrorCode``).
STATUS_OF: dict[str, int] = {
    "validation_error": 400,
    "payload_too_large": 413,
    "app_name_conflict": 409,
    "idempotency_conflict": 409,
    "idempotency_in_progress": 409,
    "queue_full": 429,
}


def translate(exc: Exception) -> func.HttpResponse:
    """Any exception from a handler as the contract's JSON envelope (never a traceback)."""
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, Refused):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        code = ErrorCode(exc.code)
        return error_response(STATUS_OF[code], code, str(exc), headers=headers)
    if isinstance(exc, NotFound):
        return not_found().response()
    if isinstance(exc, TransientBackendError):
        log.warning("storage unavailable: %s", exc)
        return error_response(
            503,
            ErrorCode.UNAVAILABLE,
            "storage is temporarily unavailable; retry",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, ConfigurationError):
        log.error("configuration error: %s", exc)
        return error_response(503, ErrorCode.MISCONFIGURED, "the service is not configured")
    if isinstance(exc, FoundryError):
        log.error("request failed: %s", exc)
    else:
        log.exception("unexpected error")
    return error_response(500, ErrorCode.INTERNAL_ERROR, "internal error")


def handle(req: func.HttpRequest, scope: str, handler: SyncHandler) -> func.HttpResponse:
    with job_context(req.route_params.get("job_id", "-")):
        try:
            check_request_line(req)
            svc = get_services()
            return handler(req, authorise(req, svc, scope), svc)
        except Exception as exc:  # noqa: BLE001 - the edge turns everything into the envelope
            return translate(exc)


async def handle_async(
    req: func.HttpRequest, scope: str, handler: AsyncHandler
) -> func.HttpResponse:
    with job_context(req.route_params.get("job_id", "-")):
        try:
            check_request_line(req)
            svc = await asyncio.to_thread(get_services)
            principal = authorise(req, svc, scope)
            return await handler(req, principal, svc)
        except Exception as exc:  # noqa: BLE001
            return translate(exc)


def handle_public(req: func.HttpRequest, handler: PublicHandler) -> func.HttpResponse:
    """The edge for unauthenticated routes: the same limits and error translation, no key."""
    try:
        check_request_line(req)
        return handler(req)
    except Exception as exc:  # noqa: BLE001 - the edge turns everything into the envelope
        return translate(exc)


def load_visible_job(svc: Services, job_id: str, principal: Principal) -> JobRecord:
    """The job, or 404 when unknown, malformed, or outside the key's owner/org limits."""
    if not is_job_id(job_id):
        raise not_found()
    job = svc.jobs.find_job(job_id)
    if job is None or not principal.may_see(job.owner, job.org_slug):
        raise not_found()
    return job
