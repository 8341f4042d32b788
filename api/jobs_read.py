"""GET routes: list jobs, one job, its logs (text or cursor JSON), its artifact and diagnostics
archives (302 to a read-only SAS)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import Principal
from api.edge import handle, load_visible_job
from api.http import forbidden, json_response, not_found, validation_error
from api.query import parse_query
from api.schemas import ListJobsQuery, LogsQuery
from api.views import job_list_view, job_view, log_page_view
from shared.domain.json_body import MalformedJson, load_json
from shared.domain.sanitize import scrub_text
from shared.domain.stream_progress import filter_log_lines
from shared.errors import TerminalBackendError
from shared.services import Services
from shared.storage.job_blobs import ARTIFACT_PATH, DIAGNOSTICS_PATH
from shared.storage.job_store import decode_cursor

log = logging.getLogger("foundry.api")
bp = df.Blueprint()
LOG_PAGE_BYTES = 256 * 1024


@bp.route(route="v1/jobs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        query = parse_query(ListJobsQuery, req.params)
        if query.owner is not None and not principal.may_use_owner(query.owner):
            raise forbidden("this key may not list jobs of that owner")
        if query.cursor is not None:
            _check_list_cursor(query.cursor)
        try:
            jobs, cursor = svc.jobs.list_jobs(
                status=query.status,
                owner=query.owner,
                owners=sorted(principal.owners)
                if query.owner is None and principal.owners
                else None,
                page_size=query.limit,
                cursor=query.cursor,
            )
        except TerminalBackendError as exc:
            # Storage refused the continuation token itself (a well-formed but forged or stale
            # cursor): the caller's input, so a 400, not a fault of the service.
            if query.cursor is None or exc.code == "auth_failed":
                raise
            log.warning("list refused a client cursor: %s", exc)
            raise validation_error("cursor is malformed or expired") from None
        visible = [j for j in jobs if principal.may_see(j.owner, j.org_slug)]
        positions = svc.jobs.queue_positions(visible)
        return json_response(200, job_list_view(visible, positions, cursor))

    return handle(req, "jobs:read", run)


def _check_list_cursor(raw: str) -> None:
    """Only a cursor this service issued reaches storage: anything else is a 400 here, never a
    storage error later."""
    try:
        decode_cursor(raw)
    except ValueError:
        raise validation_error("cursor is malformed") from None


@bp.route(route="v1/jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_job(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        job = load_visible_job(svc, req.route_params["job_id"], principal)
        view = job_view(job, queue_position=svc.jobs.queue_position(job))
        headers = {} if job.status.is_terminal else {"Retry-After": "5"}
        return json_response(200, view, headers=headers)

    return handle(req, "jobs:read", run)


@bp.route(route="v1/jobs/{job_id}/logs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_logs(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        job = load_visible_job(svc, req.route_params["job_id"], principal)
        query = parse_query(LogsQuery, req.params)
        if "cursor" in req.params:  # even empty: JSON pages from the start
            return _log_page(svc, job.job_id, query.cursor or 0, job.status.is_terminal)
        text = svc.blobs.read_log(job.job_id).decode("utf-8", errors="replace")
        return func.HttpResponse(
            _scrub_lines(filter_log_lines(text, stage=query.stage, tail=query.tail)),
            status_code=200,
            mimetype="text/plain",
            charset="utf-8",
        )

    return handle(req, "jobs:read", run)


def _scrub_lines(text: str) -> str:
    """Secret-shaped text (proxy tokens, SAS signatures, bearer credentials) never leaves the
    service, whoever wrote the log: the build runner scrubs before it uploads, this is the second
    line. Line by line, so a redaction never joins two lines."""
    return "\n".join(scrub_text(line) for line in text.split("\n"))


def _log_page(svc: Services, job_id: str, offset: int, finished: bool) -> func.HttpResponse:
    data, log_bytes = svc.blobs.read_log_page(job_id, offset=offset, max_bytes=LOG_PAGE_BYTES)
    cut = data.rfind(b"\n")
    data = data[: cut + 1] if cut >= 0 else b""
    events: list[dict[str, Any]] = []
    for line in _scrub_lines(data.decode("utf-8", errors="replace")).splitlines():
        try:  # the stream is written by untrusted build code: parse it as hostile input
            event = load_json(line)
        except MalformedJson:
            event = None
        events.append(event if isinstance(event, dict) else {"raw": line})
    next_offset = offset + len(data)
    more = next_offset < log_bytes
    return json_response(200, log_page_view(events, next_offset, finished and not more))


@bp.route(route="v1/jobs/{job_id}/artifact", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_artifact(req: func.HttpRequest) -> func.HttpResponse:
    """302 to a short-lived read-only URL of the source archive."""
    return handle(req, "jobs:read", functools.partial(_redirect_to_blob, ARTIFACT_PATH))


@bp.route(
    route="v1/jobs/{job_id}/diagnostics", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS
)
def get_diagnostics(req: func.HttpRequest) -> func.HttpResponse:
    """302 to a short-lived read-only URL of the diagnostics archive (the build's notes)."""
    return handle(req, "jobs:read", functools.partial(_redirect_to_blob, DIAGNOSTICS_PATH))


def _redirect_to_blob(
    relative: str, req: func.HttpRequest, principal: Principal, svc: Services
) -> func.HttpResponse:
    job = load_visible_job(svc, req.route_params["job_id"], principal)
    if not svc.blobs.exists(job.job_id, relative):
        raise not_found("artifact not found")  # the original's words, for both archives
    url = svc.blobs.signed_url(
        job.job_id, relative, permission="r", ttl_secs=svc.settings.signed_url_ttl_secs
    )
    return func.HttpResponse(
        status_code=302, headers={"Location": url, "Cache-Control": "no-store"}
    )
