"""What each pipeline activity does. Every step re-reads the job row first (so a cancel that
landed in between is honoured), is safe to run twice, and returns a :class:`StepResult`:
expected failures are values, only transient faults raise (so ``RetryOptions`` retries them)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.backends.base import StepState, StepStatus
from shared.domain.models import (
    FailureCode,
    JobRecord,
    JobStatus,
    StepResult,
)
from shared.domain.payloads import ImageBuilt, PhaseLimits, PreviewHealthy
from shared.domain.stream_progress import apply_stream_lines
from shared.errors import IllegalTransition, TerminalBackendError
from shared.services import Services
from shared.storage.job_blobs import ARTIFACT_PATH

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _progress(svc: Services, job_id: str, *, phase: str, percent: int, label: str | None) -> None:
    def mutate(job: JobRecord) -> JobRecord | None:
        if job.status.is_terminal:
            return None
        return replace(
            job,
            phase=phase,
            percent=max(job.percent, percent),
            stage_label=label or job.stage_label,
        )

    svc.jobs.update(job_id, mutate)


def claim_build_slot(svc: Services, job_id: str) -> StepResult:
    """queued -> building when a build slot is free (``MAX_CONCURRENT_BUILDS`` lease rows)."""
    job = svc.jobs.get_job(job_id)
    if job.status is JobStatus.BUILDING:
        return StepResult()
    if job.status is not JobStatus.QUEUED:
        return StepResult.was_canceled()

    def status_of(other: str) -> JobStatus | None:
        found = svc.jobs.find_job(other)
        return found.status if found is not None else None

    if not svc.slots.claim(job_id, slots=svc.settings.max_concurrent_builds, status_of=status_of):
        return StepResult(done=False, message="all build slots are taken; waiting")
    try:
        svc.jobs.transition(
            job_id,
            JobStatus.BUILDING,
            reason="build slot claimed",
            only_from=[JobStatus.QUEUED],
            started_at=_now(),
            phase="starting",
        )
    except IllegalTransition:
        return StepResult.was_canceled()
    svc.audit.record("job.building", job_id=job_id)
    return StepResult()


def phase_limits(svc: Services) -> PhaseLimits:
    settings = svc.settings
    return PhaseLimits(
        build_timeout_secs=settings.build_timeout_secs,
        image_timeout_secs=settings.image_build_timeout_secs,
        deploy_timeout_secs=settings.deploy_timeout_secs,
        poll_max_secs=settings.poll_max_secs,
        build_check_secs=_build_check_secs(svc),
        check_wait_secs=settings.check_wait_secs,
    )


def _build_check_secs(svc: Services) -> int:
    """``BUILD_CHECK_SECS``, or when it is 0 (auto): wait for the pushed end where the backend's
    builds post it, else check on a backoff capped at ``POLL_MAX_SECS``."""
    if svc.settings.build_check_secs or svc.backend.notifies_build_end:
        return svc.settings.build_check_secs
    return svc.settings.poll_max_secs


def start_build(svc: Services, job_id: str) -> StepResult:
    """Claim a build slot, then grant storage + mint the proxy token + start the build, exactly
    once per job. Not done (with the limits) while every slot is taken."""
    limits = phase_limits(svc).to_dict()
    claimed = claim_build_slot(svc, job_id)
    if not claimed.ok:
        return claimed
    if not claimed.done:
        return replace(claimed, data=limits)
    job = svc.jobs.get_job(job_id)
    if job.status is not JobStatus.BUILDING:
        return StepResult.was_canceled()
    if not svc.backend.writes_stream_to_blob:
        svc.blobs.ensure_log(job_id)  # else the build runner creates it with its first lines
    if not svc.backend.build_started(job_id):
        svc.tokens.revoke_job(job_id)  # a token minted by a crashed attempt must not stay live
        expires = _now() + timedelta(seconds=svc.settings.grant_ttl_secs)
        token = svc.tokens.mint(job_id, expires_at=expires)
        try:
            svc.backend.start_build(job, proxy_token=token)
        except TerminalBackendError as exc:
            return StepResult.failure(FailureCode.BACKEND_UNAVAILABLE, str(exc))
        finally:
            del token
        svc.audit.record("build.started", job_id=job_id, backend=svc.backend.name)
        log.info("build started on %s", svc.backend.name)
    _progress(svc, job_id, phase="building", percent=5, label="Build container starting")
    return StepResult(data=limits)


def check_build(svc: Services, job_id: str) -> StepResult:
    """Fold the build log (by byte offset) into job progress; once the build has ended, check
    its report and artifact, free its build slot and start the image build (building ->
    deploying). Not done while the build still runs."""
    job = svc.jobs.get_job(job_id)
    if job.status is JobStatus.DEPLOYING:
        return _start_image(svc, job)  # a retry after the transition: make sure it started
    if job.status is not JobStatus.BUILDING:
        return StepResult.was_canceled()
    status = _long_poll(svc, lambda: svc.backend.poll_build(job_id))
    # Polled before reading the log, so no line written before the build exited is missed.
    follow_stream(svc, job)
    if status.state is StepState.RUNNING:
        return StepResult(done=False)
    if status.state is StepState.MISSING:
        return StepResult.failure(FailureCode.BACKEND_UNAVAILABLE, "build execution not found")
    job = svc.jobs.get_job(job_id)
    if status.state is StepState.FAILED:
        code = status.code or FailureCode.BUILD_CRASHED.value
        return StepResult.failure(code, status.message or "build failed")
    if not job.detail.get("report_received"):
        return StepResult.failure(
            FailureCode.BUILD_CRASHED, "no terminal report in the build stream"
        )
    artifact = svc.backend.collect_artifact(job_id)
    if artifact is not None:
        svc.blobs.put_artifact(job_id, artifact)
    has_artifact = artifact is not None or svc.blobs.exists(job_id, ARTIFACT_PATH)
    svc.jobs.update(job_id, lambda j: replace(j, has_artifact=has_artifact))
    try:
        job = svc.jobs.transition(
            job_id,
            JobStatus.DEPLOYING,
            reason="build finished",
            only_from=[JobStatus.BUILDING],
            phase="image",
            percent=max(job.percent, 85),
            stage_label="Building app image",
        )
    except IllegalTransition:
        return StepResult.was_canceled()
    svc.slots.release(job_id)  # the builder has exited: the next queued job may build now
    return _start_image(svc, job)


def _start_image(svc: Services, job: JobRecord) -> StepResult:
    try:
        svc.backend.start_image_build(job)
    except TerminalBackendError as exc:
        code = (
            FailureCode.IMAGE_BUILD_NOT_ALLOWED
            if exc.code == "TasksOperationsNotAllowed"
            else FailureCode.PREVIEW_DEPLOY_FAILED
        )
        return StepResult.failure(code, str(exc))
    return StepResult()


def _long_poll(svc: Services, poll: Callable[[], StepStatus]) -> StepStatus:
    """Poll at once, then every ``backend.poll_interval_secs`` while the step runs, for up to
    ``check_wait_secs``: one activity call then covers a short wait without a durable timer."""
    deadline = time.monotonic() + svc.settings.check_wait_secs
    while True:
        status = poll()
        remaining = deadline - time.monotonic()
        if status.state is not StepState.RUNNING or remaining <= 0:
            return status
        time.sleep(min(svc.backend.poll_interval_secs, remaining))


def follow_stream(svc: Services, job: JobRecord) -> None:
    """Fold the build log written since ``job.log_offset`` into the row (at most once)."""
    offset = job.log_offset
    data = svc.backend.read_stream(job.job_id, offset=offset)
    if not data:
        return
    if not svc.backend.writes_stream_to_blob:
        svc.blobs.append_log(job.job_id, data, at_offset=offset)
    new_offset = offset + len(data)

    def mutate(current: JobRecord) -> JobRecord | None:
        if current.log_offset != offset or current.status.is_terminal:
            return None  # another attempt already folded these bytes in
        return replace(apply_stream_lines(current, data), log_offset=new_offset)

    svc.jobs.update(job.job_id, mutate)


def stop_build_for_timeout(svc: Services, job_id: str) -> StepResult:
    svc.backend.stop_build(job_id)
    return StepResult.failure(
        FailureCode.BUILD_TIMEOUT,
        f"build exceeded the {svc.settings.build_timeout_secs}s wall-clock timeout",
    )


def check_image(svc: Services, job_id: str) -> StepResult:
    """Follow the image build; once it is built, deploy the preview (create-or-get)."""
    job = svc.jobs.get_job(job_id)
    status = _deploy_step_outcome(
        svc, job, lambda: svc.backend.poll_image_build(job_id), failed="image build failed"
    )
    if isinstance(status, StepResult):
        return status
    built = ImageBuilt(image_ref=str(status.facts["image_ref"]))
    _progress(svc, job_id, phase="preview", percent=95, label="Deploying preview")
    try:
        svc.backend.deploy_preview(job, image_ref=built.image_ref)
    except TerminalBackendError as exc:
        return StepResult.failure(FailureCode.PREVIEW_DEPLOY_FAILED, str(exc))
    return StepResult(data=built.to_dict())


def check_preview(svc: Services, job_id: str) -> StepResult:
    """Follow the deployed preview until it answers healthy; its URL is the result."""
    job = svc.jobs.get_job(job_id)
    status = _deploy_step_outcome(
        svc, job, lambda: svc.backend.poll_preview(job), failed="preview did not become healthy"
    )
    if isinstance(status, StepResult):
        return status
    return StepResult(data=PreviewHealthy(preview_url=str(status.facts["preview_url"])).to_dict())


def _deploy_step_outcome(
    svc: Services, job: JobRecord, poll: Callable[[], StepStatus], *, failed: str
) -> StepStatus | StepResult:
    """Long-poll one deploy-phase step of ``job``: its succeeded status, else the result to return
    at once: canceled when the job is no longer deploying (nothing is polled), not done while
    the step runs, or a failure with the status's code (default ``preview_deploy_failed``) and
    message (default ``failed``)."""
    if job.status is not JobStatus.DEPLOYING:
        return StepResult.was_canceled()
    status = _long_poll(svc, poll)
    if status.state is StepState.RUNNING:
        return StepResult(done=False)
    if status.state is not StepState.SUCCEEDED:
        return StepResult.failure(
            status.code or FailureCode.PREVIEW_DEPLOY_FAILED, status.message or failed
        )
    return status


def finalize_ready(svc: Services, job_id: str, preview_url: str) -> StepResult:
    job = svc.jobs.get_job(job_id)
    if job.status is JobStatus.READY:
        return StepResult()
    now = _now()
    try:
        svc.jobs.transition(
            job_id,
            JobStatus.READY,
            reason="preview healthy",
            only_from=[JobStatus.DEPLOYING],
            percent=100,
            phase="ready",
            stage_label=None,
            preview_url=preview_url,
            preview_expires_at=now + timedelta(hours=job.ttl_hours),
            finished_at=now,
        )
    except IllegalTransition:
        return StepResult.was_canceled()
    svc.tokens.revoke_job(job_id)
    svc.audit.record("job.ready", job_id=job_id, preview_url=preview_url)
    log.info("job ready at %s", preview_url)
    return StepResult()
