"""The timer's work: expire previews past their TTL, reconcile job rows with their
orchestrations, sweep orphaned backend resources, purge old orchestration history.

Each part is independent and best-effort per job: one bad job never stops the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from orchestrators import signals
from shared.backends.base import StepState
from shared.domain.models import IN_FLIGHT_STATUSES, FailureCode, JobStatus
from shared.errors import FoundryError, IllegalTransition
from shared.pipeline import lifecycle, steps
from shared.services import Services

log = logging.getLogger("foundry.maintenance")
#: A queued job whose orchestration is missing this long after submit gets (re)started.
START_GRACE = timedelta(seconds=30)
#: How long after a cancel the reconciler keeps checking that its cleanup happened.
CANCEL_WATCH = timedelta(days=1)
_FINISHED = {"Completed", "Failed", "Terminated", "Canceled"}
_LIVE = {"Running", "Pending", "ContinuedAsNew"}


class DurableClient(signals.SignalClient, Protocol):
    """What the sweeps use of ``DurableOrchestrationClient``: signals, status and purge."""

    async def get_status(self, instance_id: str) -> Any: ...
    async def purge_instance_history(self, instance_id: str) -> Any: ...


@dataclass
class MaintenanceReport:
    expired: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    resignaled: list[str] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items()}


async def run_maintenance(
    svc: Services, client: DurableClient, *, now: datetime | None = None
) -> MaintenanceReport:
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    await asyncio.to_thread(_reap_expired, svc, now, report)
    await _reconcile(svc, client, now, report)
    await asyncio.to_thread(_sweep_orphans, svc, report)
    await purge_history(svc, client, now, report)
    if any(v for k, v in report.to_dict().items()):
        log.info("maintenance: %s", report.to_dict())
    return report


def _reap_expired(svc: Services, now: datetime, report: MaintenanceReport) -> None:
    for job in svc.jobs.iter_jobs([JobStatus.READY]):
        if job.preview_expires_at is None or job.preview_expires_at > now:
            continue
        try:
            lifecycle.expire_job(svc, job.job_id, reason="preview TTL elapsed", clear_preview=False)
            report.expired.append(job.job_id)
        except IllegalTransition:
            continue
        except FoundryError as exc:
            report.errors.append(f"{job.job_id}: expire: {exc}")


async def _reconcile(
    svc: Services, client: DurableClient, now: datetime, report: MaintenanceReport
) -> None:
    in_flight = await asyncio.to_thread(svc.jobs.iter_jobs, IN_FLIGHT_STATUSES)
    # Canceled jobs only while their cleanup may still be outstanding (not marked cleaned, and
    # canceled within the last day), so this does not grow with the table.
    canceled = await asyncio.to_thread(
        partial(
            svc.jobs.iter_jobs,
            [JobStatus.CANCELED],
            finished_after=now - CANCEL_WATCH,
            phase_not=lifecycle.CLEANED_PHASE,
        )
    )
    if any(job.status is JobStatus.QUEUED for job in in_flight):
        queued = await asyncio.to_thread(lifecycle.next_in_queue, svc)
        report.woken.extend(await signals.wake_queued(client, queued))
    for job in [*in_flight, *canceled]:
        try:
            status = await client.get_status(job.job_id)
            runtime = runtime_status(status)
            if job.status is JobStatus.CANCELED:
                if runtime in _LIVE:
                    await signals.cancel(client, job.job_id, by="reconciler")
                    report.resignaled.append(job.job_id)
                elif job.finished_at and now - job.finished_at > START_GRACE:
                    # No orchestration will compensate: make sure nothing is left running.
                    removed = await asyncio.to_thread(lifecycle.release_job_resources, svc, job)
                    await asyncio.to_thread(lifecycle.mark_cleaned, svc, job.job_id)
                    if removed:
                        report.repaired.append(job.job_id)
                continue
            if runtime is None:
                if job.status is JobStatus.QUEUED and now - job.created_at > START_GRACE:
                    await signals.start(client, job.job_id)
                    report.restarted.append(job.job_id)
                elif job.status is not JobStatus.QUEUED:
                    await asyncio.to_thread(
                        lifecycle.fail_job,
                        svc,
                        job.job_id,
                        FailureCode.INTERNAL_ERROR.value,
                        "orchestration lost mid-build",
                    )
                    report.repaired.append(job.job_id)
            elif runtime in _LIVE and job.status is JobStatus.BUILDING:
                if await asyncio.to_thread(_build_has_ended, svc, job.job_id):
                    await signals.build_finished(client, job.job_id, by="reconciler")
                    report.resignaled.append(job.job_id)
            elif runtime in _FINISHED:
                await asyncio.to_thread(
                    lifecycle.fail_job,
                    svc,
                    job.job_id,
                    FailureCode.INTERNAL_ERROR.value,
                    f"orchestration ended ({runtime}) before the job did",
                )
                report.repaired.append(job.job_id)
        except Exception as exc:  # noqa: BLE001 - keep sweeping the other jobs
            report.errors.append(f"{job.job_id}: reconcile: {exc}")


def _build_has_ended(svc: Services, job_id: str) -> bool:
    """The reconciler's fallback for a lost ``finished`` notice: ask the backend, and fold the
    log written so far into progress while the build runs."""
    if svc.backend.poll_build(job_id).state is not StepState.RUNNING:
        return True
    job = svc.jobs.find_job(job_id)
    if job is not None and job.status is JobStatus.BUILDING:
        steps.follow_stream(svc, job)
    return False


def runtime_status(status: Any) -> str | None:
    runtime = getattr(status, "runtime_status", None)
    if runtime is None:
        return None
    return str(getattr(runtime, "value", runtime))


def _sweep_orphans(svc: Services, report: MaintenanceReport) -> None:
    try:
        resources = svc.backend.list_resources()
    except FoundryError as exc:
        report.errors.append(f"sweep: {exc}")
        return
    for job_id in sorted({r.job_id for r in resources}):
        job = svc.jobs.find_job(job_id)
        if job is not None and job.status.is_active:
            continue
        try:
            svc.backend.teardown(job_id)
            svc.tokens.revoke_job(job_id)
            report.orphans_removed.append(job_id)
            svc.audit.record("orphan.removed", job_id=job_id)
        except FoundryError as exc:
            report.errors.append(f"{job_id}: sweep: {exc}")


async def purge_history(
    svc: Services, client: DurableClient, now: datetime, report: MaintenanceReport
) -> None:
    cutoff = now - timedelta(days=svc.settings.history_retention_days)
    terminal = [JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED]
    jobs = await asyncio.to_thread(
        partial(svc.jobs.iter_jobs, terminal, finished_before=cutoff, phase_not="purged")
    )
    for job in jobs:
        try:
            await client.purge_instance_history(job.job_id)
            await asyncio.to_thread(
                svc.jobs.update, job.job_id, lambda j: replace(j, phase="purged")
            )
            report.purged.append(job.job_id)
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"{job.job_id}: purge: {exc}")
