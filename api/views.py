"""The JSON shapes the API returns for a job (the contract's JobView and accepted body)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.domain.models import JobRecord

SCHEMA_VERSION = 1
_DETAIL_KEYS = ("tasks_total", "tasks_completed", "tasks_wip")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def poll_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def job_view(job: JobRecord, *, queue_position: int | None = None) -> dict[str, Any]:
    error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
    detail: dict[str, Any] = {key: int(job.detail.get(key, 0) or 0) for key in _DETAIL_KEYS}
    detail["stages"] = []
    if job.detail.get("current_stage"):
        detail["current_stage"] = job.detail["current_stage"]
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": job.job_id,
        "app_name": job.app_name,
        "org_slug": job.org_slug,
        "owner": job.owner,
        "status": job.status.value,
        "phase": job.phase,
        "percent": job.percent,
        "stage_label": job.stage_label,
        "preview_url": job.preview_url,
        "preview_expires_at": rfc3339(job.preview_expires_at),
        "expires_at": rfc3339(job.preview_expires_at),
        "queue_position": queue_position,
        "cost_usd": job.cost_usd,
        "usage": {
            "input_tokens": job.input_tokens,
            "output_tokens": job.output_tokens,
            # What the builder's LLM calls through the proxy cost (recorded by the proxy).
            "proxy": job.detail.get("proxy_usage")
            or {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
        },
        "created_at": rfc3339(job.created_at),
        "started_at": rfc3339(job.started_at),
        "finished_at": rfc3339(job.finished_at),
        "ttl_hours": job.ttl_hours,
        "error": error,
        "quality": job.quality,
        "detail": detail,
    }


def accepted_view(job: JobRecord, *, queue_position: int | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": job.job_id,
        "status": job.status.value,
        "queue_position": queue_position,
        "created_at": rfc3339(job.created_at),
        "poll_url": poll_url(job.job_id),
    }
