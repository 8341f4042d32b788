"""GET routes: list jobs, one job, its logs (text or cursor JSON), its artifact (302 to SAS)."""

from __future__ import annotations

import json

import azure.durable_functions as df
import azure.functions as func

from api.auth import Principal
from api.edge import handle, load_visible_job
from api.http import ApiError, json_response, validation_error
from api.views import SCHEMA_VERSION, job_view
from shared.domain.models import JobStatus
from shared.domain.sanitize import scrub_text
from shared.domain.stream_progress import filter_log_lines
from shared.services import Services
from shared.storage.job_blobs import ARTIFACT_PATH

bp = df.Blueprint()
MAX_PAGE = 100
LOG_PAGE_BYTES = 256 * 1024


def _int_param(
    req: func.HttpRequest, name: str, *, low: int, high: int | None = None
) -> int | None:
    raw = req.params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise validation_error(f"{name} must be an integer {bound}")
    return int(raw)


@bp.route(route="v1/jobs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        status_raw = req.params.get("status") or None
        try:
            status = JobStatus(status_raw) if status_raw else None
        except ValueError:
            raise validation_error(
                "status must be one of " + ", ".join(s.value for s in JobStatus)
            ) from None
        owner = req.params.get("owner") or None
        if owner is not None and not principal.may_use_owner(owner):
            raise ApiError(403, "forbidden", "this key may not list jobs of that owner")
        limit = _int_param(req, "limit", low=1, high=MAX_PAGE) or 50
        try:
            jobs, cursor = svc.jobs.list_jobs(
                status=status,
                owner=owner,
                owners=sorted(principal.owners) if owner is None and principal.owners else None,
                page_size=limit,
                cursor=req.params.get("cursor") or None,
            )
        except ValueError as exc:
            raise validation_error(str(exc)) from exc
        visible = [j for j in jobs if principal.may_see(j.owner, j.org_slug)]
        positions = svc.jobs.queue_positions(visible)
        return json_response(
            200,
            {
                "schema_version": SCHEMA_VERSION,
                "jobs": [job_view(j, queue_position=positions[j.job_id]) for j in visible],
                "next_cursor": cursor,
            },
        )

    return handle(req, "jobs:read", run)


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
        tail = _int_param(req, "tail", low=0)
        stage = req.params.get("stage") or None
        if "cursor" in req.params:
            offset = _int_param(req, "cursor", low=0) or 0
            return _log_page(svc, job.job_id, offset, job.status.is_terminal)
        text = svc.blobs.read_log(job.job_id).decode("utf-8", errors="replace")
        return func.HttpResponse(
            _scrub_lines(filter_log_lines(text, stage=stage, tail=tail)),
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
    data = svc.blobs.read_log(job_id, offset=offset, max_bytes=LOG_PAGE_BYTES)
    cut = data.rfind(b"\n")
    data = data[: cut + 1] if cut >= 0 else b""
    events = []
    for line in _scrub_lines(data.decode("utf-8", errors="replace")).splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"raw": line})
    next_offset = offset + len(data)
    more = next_offset < svc.blobs.log_size(job_id)
    return json_response(
        200,
        {
            "schema_version": SCHEMA_VERSION,
            "events": events,
            "next_cursor": str(next_offset),
            "complete": finished and not more,
        },
    )


@bp.route(route="v1/jobs/{job_id}/artifact", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_artifact(req: func.HttpRequest) -> func.HttpResponse:
    def run(req: func.HttpRequest, principal: Principal, svc: Services) -> func.HttpResponse:
        job = load_visible_job(svc, req.route_params["job_id"], principal)
        if not svc.blobs.exists(job.job_id, ARTIFACT_PATH):
            raise ApiError(404, "not_found", "artifact not found")
        url = svc.blobs.signed_url(
            job.job_id, ARTIFACT_PATH, permission="r", ttl_secs=svc.settings.signed_url_ttl_secs
        )
        return func.HttpResponse(
            status_code=302, headers={"Location": url, "Cache-Control": "no-store"}
        )

    return handle(req, "jobs:read", run)
