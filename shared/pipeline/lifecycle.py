"""Lifecycle operations shared by the pipeline's compensation activities, the API (cancel,
DELETE preview), the timers (reaper, reconciler) and the operator CLI. Each is idempotent: a
second run finds the work done and changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from shared.domain.models import (
    CLEANED_PHASE,
    IN_FLIGHT_STATUSES,
    FailureCode,
    JobRecord,
    JobStatus,
    StepResult,
)
from shared.errors import IllegalTransition
from shared.services import Services
from shared.storage.job_index import ActiveEntry

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def fail_job(svc: Services, job_id: str, code: str, message: str) -> StepResult:
    """Terminal failure + compensation: stop/delete what was created, revoke, free the name."""
    job = svc.jobs.get_job(job_id)
    if job.status in IN_FLIGHT_STATUSES:
        try:
            job = svc.jobs.transition(
                job_id,
                JobStatus.FAILED,
                reason=f"{code}: {message}",
                error_code=code,
                error_message=message[:1000],
                finished_at=_now(),
                phase="failed",
                stage_label=None,
            )
        except IllegalTransition:
            job = svc.jobs.get_job(job_id)
    release_job_resources(svc, job)
    svc.audit.record("job.failed", job_id=job_id, code=code, message=message)
    log.warning("job failed: %s: %s", code, message)
    return StepResult()


def cancel_job(svc: Services, job_id: str, *, reason: str = "canceled by caller") -> JobRecord:
    """Mark an in-flight job canceled (the API does this first, then signals the orchestrator)."""
    return svc.jobs.transition(
        job_id,
        JobStatus.CANCELED,
        reason=reason,
        only_from=IN_FLIGHT_STATUSES,
        error_code=FailureCode.CANCELED.value,
        error_message=reason,
        finished_at=_now(),
        phase="canceled",
        stage_label=None,
    )


def compensate_cancel(svc: Services, job_id: str) -> StepResult:
    """The orchestrator's reaction to a cancel: make sure the row says canceled, then clean up."""
    job = svc.jobs.get_job(job_id)
    if job.status in IN_FLIGHT_STATUSES:
        try:
            job = cancel_job(svc, job_id)
        except IllegalTransition:
            job = svc.jobs.get_job(job_id)
    release_job_resources(svc, job)
    if job.status is JobStatus.CANCELED:
        mark_cleaned(svc, job_id)
    return StepResult()


def mark_cleaned(svc: Services, job_id: str) -> None:
    """Record that a canceled job's teardown ran, so the reconciler stops watching it."""
    svc.jobs.update(
        job_id, lambda j: replace(j, phase=CLEANED_PHASE) if j.phase != CLEANED_PHASE else None
    )


def expire_job(svc: Services, job_id: str, *, reason: str, clear_preview: bool) -> JobRecord:
    """ready -> expired (TTL or DELETE preview), then tear the preview down."""
    changes: dict[str, object] = {"phase": "expired"}
    if clear_preview:
        changes.update(preview_url=None, preview_expires_at=None)
    job = svc.jobs.transition(
        job_id, JobStatus.EXPIRED, reason=reason, only_from=[JobStatus.READY], **changes
    )
    release_job_resources(svc, job)
    svc.audit.record("job.expired", job_id=job_id, reason=reason)
    return job


def release_job_resources(svc: Services, job: JobRecord) -> list[str]:
    """Idempotent teardown for a job that no longer needs anything running."""
    svc.tokens.revoke_job(job.job_id)
    if job.status is JobStatus.READY:
        return []  # a live preview keeps its app, name and resources until it expires
    removed: list[str] = []
    try:
        removed = svc.backend.teardown(job.job_id)
    finally:
        if job.status.is_terminal:
            svc.claims.release_app_name(job.app_name, job.org_slug, job_id=job.job_id)
    if removed:
        svc.audit.record("job.teardown", job_id=job.job_id, removed=removed)
    return removed


def next_in_queue(svc: Services, active: Iterable[ActiveEntry] | None = None) -> list[str]:
    """The oldest queued jobs without a slot, as many as there are free build slots (at least
    one, so a slot freed by self-healing is noticed too). ``active`` is the index's active set
    if the caller has just read it.

    Slots are counted from the slot rows, as a claim judges them: a job whose builder has exited
    released its slot but stays ``building`` until its orchestration checks the build, so
    counting ``building`` jobs would wake too few (a batch then waited a backoff timer for a
    slot that was free)."""
    entries = list(active) if active is not None else svc.jobs.active()
    status_of = {e.job_id: e.status for e in entries}
    held = svc.slots.held(status_of.get)
    free = max(1, svc.settings.max_concurrent_builds - len(held))
    waiting = (
        job_id
        for job_id, status in status_of.items()
        if status is JobStatus.QUEUED and job_id not in held
    )
    return sorted(waiting)[:free]  # job ids sort by submit time
