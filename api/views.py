"""The JSON bodies the API returns for a job (the contract's JobView and accepted body), built
through the models in ``api.schemas`` so they cannot drift from ``/v1/openapi.json``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.schemas import (
    Accepted,
    Detail,
    JobError,
    JobList,
    JobView,
    LogPage,
    ProxyUsage,
    Quality,
    Usage,
)
from shared.domain.models import JobRecord

SCHEMA_VERSION = 1


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def poll_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def job_view(job: JobRecord, *, queue_position: int | None = None) -> dict[str, Any]:
    return job_view_model(job, queue_position=queue_position).model_dump(mode="json")


def job_view_model(job: JobRecord, *, queue_position: int | None = None) -> JobView:
    expires = rfc3339(job.preview_expires_at)
    return JobView(
        job_id=job.job_id,
        app_name=job.app_name,
        org_slug=job.org_slug,
        owner=job.owner,
        status=job.status,
        phase=job.phase,
        percent=job.percent,
        stage_label=job.stage_label,
        preview_url=job.preview_url,
        preview_expires_at=expires,
        expires_at=expires,
        queue_position=queue_position,
        cost_usd=job.cost_usd,
        usage=Usage(
            input_tokens=job.input_tokens,
            output_tokens=job.output_tokens,
            # What the builder's LLM calls through the proxy cost (recorded by the proxy).
            proxy=ProxyUsage.model_validate(job.detail.get("proxy_usage") or {}),
        ),
        created_at=rfc3339(job.created_at) or "",
        started_at=rfc3339(job.started_at),
        finished_at=rfc3339(job.finished_at),
        ttl_hours=job.ttl_hours,
        error=(
            JobError(code=job.error_code, message=job.error_message or "")
            if job.error_code
            else None
        ),
        quality=Quality.model_validate(job.quality),
        detail=Detail(
            tasks_total=_count(job.detail, "tasks_total"),
            tasks_completed=_count(job.detail, "tasks_completed"),
            tasks_wip=_count(job.detail, "tasks_wip"),
            current_stage=job.detail.get("current_stage") or None,
        ),
    )


def _count(detail: dict[str, Any], key: str) -> int:
    return int(detail.get(key, 0) or 0)


def job_list_view(
    jobs: list[JobRecord], positions: dict[str, int | None], next_cursor: str | None
) -> dict[str, Any]:
    views = [job_view_model(j, queue_position=positions[j.job_id]) for j in jobs]
    return JobList(jobs=views, next_cursor=next_cursor).model_dump(mode="json")


def log_page_view(events: list[dict[str, Any]], next_offset: int, complete: bool) -> dict[str, Any]:
    return LogPage(events=events, next_cursor=str(next_offset), complete=complete).model_dump(
        mode="json"
    )


def accepted_view(job: JobRecord, *, queue_position: int | None) -> dict[str, Any]:
    return Accepted(
        job_id=job.job_id,
        status=job.status,
        queue_position=queue_position,
        created_at=rfc3339(job.created_at) or "",
        poll_url=poll_url(job.job_id),
    ).model_dump(mode="json")
