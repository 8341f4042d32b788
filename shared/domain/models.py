"""The job record, its status machine and the payloads that cross the durable boundary."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class JobStatus(enum.StrEnum):
    """The seven status strings of the v1 contract."""

    QUEUED = "queued"
    BUILDING = "building"
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Holds an app name and may own cloud resources."""
        return self in ACTIVE_STATUSES

    def can_transition_to(self, target: JobStatus) -> bool:
        return target in ALLOWED_TRANSITIONS[self]


TERMINAL_STATUSES = frozenset(
    {JobStatus.READY, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED}
)
ACTIVE_STATUSES = frozenset(
    {JobStatus.QUEUED, JobStatus.BUILDING, JobStatus.DEPLOYING, JobStatus.READY}
)
IN_FLIGHT_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.BUILDING, JobStatus.DEPLOYING})
#: Finished without a live preview: the orchestration history of these is purged after retention.
ENDED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})

#: ``phase`` of a canceled job once its teardown has run (the reconciler stops watching it).
CLEANED_PHASE = "cleaned"
#: ``phase`` of an ended job once its orchestration history has been purged.
PURGED_PHASE = "purged"

#: Exactly the edges of the contract (models.rs::can_transition_to).
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.BUILDING, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.BUILDING: frozenset({JobStatus.DEPLOYING, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.DEPLOYING: frozenset({JobStatus.READY, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.READY: frozenset({JobStatus.EXPIRED}),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}


class FailureCode(enum.StrEnum):
    """Codes that appear only as ``JobView.error.code``."""

    INTERNAL_ERROR = "internal_error"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BUILD_TIMEOUT = "build_timeout"
    BUILD_CRASHED = "build_crashed"
    PREVIEW_DEPLOY_FAILED = "preview_deploy_failed"
    IMAGE_BUILD_NOT_ALLOWED = "image_build_not_allowed"
    CANCELED = "canceled"


def default_quality() -> dict[str, Any]:
    return {"audit": "pending", "findings": {"high": 0, "medium": 0, "low": 0}}


def default_detail() -> dict[str, Any]:
    return {"tasks_total": 0, "tasks_completed": 0, "tasks_wip": 0, "stages": []}


@dataclass
class JobRecord:
    """One row of the ``jobs`` table, as the service sees it."""

    job_id: str
    app_name: str
    owner: str
    request_hash: str
    created_at: datetime
    ttl_hours: int
    org_slug: str | None = None
    status: JobStatus = JobStatus.QUEUED
    percent: int = 0
    phase: str = "queued"
    stage_label: str | None = None
    preview_url: str | None = None
    preview_expires_at: datetime | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    quality: dict[str, Any] = field(default_factory=default_quality)
    detail: dict[str, Any] = field(default_factory=default_detail)
    log_offset: int = 0
    has_artifact: bool = False
    etag: str | None = None


@dataclass(frozen=True)
class StepResult:
    """What every pipeline activity returns: expected outcomes are values, not exceptions.

    ``ok`` false with a ``code`` is a terminal failure of the job; ``canceled`` means the job row
    was already canceled when the activity looked, so the orchestrator should compensate.
    """

    ok: bool = True
    canceled: bool = False
    code: str | None = None
    message: str | None = None
    done: bool = True
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StepResult:
        return cls(
            ok=bool(raw.get("ok", True)),
            canceled=bool(raw.get("canceled", False)),
            code=raw.get("code"),
            message=raw.get("message"),
            done=bool(raw.get("done", True)),
            data=dict(raw.get("data") or {}),
        )

    @classmethod
    def failure(cls, code: FailureCode | str, message: str) -> StepResult:
        return cls(ok=False, code=str(getattr(code, "value", code)), message=message)

    @classmethod
    def was_canceled(cls) -> StepResult:
        return cls(ok=False, canceled=True)
