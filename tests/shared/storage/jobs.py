"""Job records for storage tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.domain.ids import new_job_id
from shared.domain.models import JobRecord


def new_job(**overrides: Any) -> JobRecord:
    """A queued job with the least a row needs; ``overrides`` set any field."""
    base: dict[str, Any] = {
        "job_id": new_job_id(),
        "app_name": "app",
        "owner": "alice",
        "request_hash": "h",
        "created_at": datetime.now(UTC),
        "ttl_hours": 24,
    }
    base.update(overrides)
    return JobRecord(**base)
