"""The timer's work: expire previews past their TTL, reconcile job rows with their
orchestrations, sweep orphaned backend resources and submit inputs, purge old orchestration
history.

Each part is independent and best-effort per job: one bad job never stops the sweep. Each reads
the jobs table's index (``shared.storage.job_index``), never a scan of the job rows: a pass reads
the active jobs, the canceled jobs of the last day, the jobs due for a purge and the submits of a
recent time window, so its cost does not grow with the finished jobs kept.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from orchestrators import signals
from shared.backends.base import StepState
from shared.domain.ids import job_id_time, job_id_time_prefix, newest_first_key
from shared.domain.models import IN_FLIGHT_STATUSES, PURGED_PHASE, FailureCode, JobStatus
from shared.errors import FoundryError, IllegalTransition
from shared.pipeline import lifecycle, steps
from shared.services import Services
from shared.storage.job_index import ActiveEntry

log = logging.getLogger("foundry.maintenance")
#: A queued job whose orchestration is missing this long after submit gets (re)started.
START_GRACE = timedelta(seconds=30)
#: How long after a cancel the reconciler keeps checking that its cleanup happened.
CANCEL_WATCH = timedelta(days=1)
#: Inputs of a submit that never wrote its job row are removed once they are this old (a submit
#: request cannot live that long), by a pass every ``ORPHAN_INPUT_EVERY_MINUTES`` over the submits
#: of the ``ORPHAN_INPUT_WINDOW`` before that (so each one gets several chances).
ORPHAN_INPUT_AGE = timedelta(minutes=10)
ORPHAN_INPUT_WINDOW = timedelta(minutes=30)
ORPHAN_INPUT_EVERY_MINUTES = 10
#: ULID time prefixes of 6 characters cover 2**20 ms (about 17.5 minutes) each.
_BUCKET_CHARS = 6
_BUCKET = timedelta(milliseconds=2**20)
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
    inputs_removed: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items()}


async def run_maintenance(
    svc: Services, client: DurableClient, *, now: datetime | None = None
) -> MaintenanceReport:
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    active = await asyncio.to_thread(svc.jobs.active)
    await asyncio.to_thread(_reap_expired, svc, active, now, report)
    await _reconcile(svc, client, active, now, report)
    await asyncio.to_thread(_sweep_orphans, svc, report)
    if now.minute % ORPHAN_INPUT_EVERY_MINUTES == 0:
        await asyncio.to_thread(sweep_orphan_inputs, svc, now, report)
    await purge_history(svc, client, now, report)
    if any(v for k, v in report.to_dict().items()):
        log.info("maintenance: %s", report.to_dict())
    return report


def _reap_expired(
    svc: Services, active: list[ActiveEntry], now: datetime, report: MaintenanceReport
) -> None:
    for job in active:
        if job.status is not JobStatus.READY:
            continue
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
    svc: Services,
    client: DurableClient,
    active: list[ActiveEntry],
    now: datetime,
    report: MaintenanceReport,
) -> None:
    in_flight = [job for job in active if job.status in IN_FLIGHT_STATUSES]
    # Canceled jobs only while their cleanup may still be outstanding (not marked cleaned, and
    # canceled within the last day): a key range of the index.
    canceled = await asyncio.to_thread(svc.jobs.canceled_since, now - CANCEL_WATCH)
    if any(job.status is JobStatus.QUEUED for job in in_flight):
        queued = lifecycle.next_in_queue(svc, active)
        report.woken.extend(await signals.wake_queued(client, queued))
    for entry in canceled:
        try:
            runtime = runtime_status(await client.get_status(entry.job_id))
            if runtime in _LIVE:
                await signals.cancel(client, entry.job_id, by="reconciler")
                report.resignaled.append(entry.job_id)
            elif now - entry.finished_at > START_GRACE:
                # No orchestration will compensate: make sure nothing is left running.
                record = await asyncio.to_thread(svc.jobs.get_job, entry.job_id)
                removed = await asyncio.to_thread(lifecycle.release_job_resources, svc, record)
                await asyncio.to_thread(lifecycle.mark_cleaned, svc, entry.job_id)
                if removed:
                    report.repaired.append(entry.job_id)
        except Exception as exc:  # noqa: BLE001 - keep sweeping the other jobs
            report.errors.append(f"{entry.job_id}: reconcile: {exc}")
    for job in in_flight:
        try:
            status = await client.get_status(job.job_id)
            runtime = runtime_status(status)
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


def sweep_orphan_inputs(svc: Services, now: datetime, report: MaintenanceReport) -> None:
    """Delete the inputs of submits that never wrote their job row (the submitter died between
    storing SPEC/TASKS and the job row's transaction). Reads only the submits of one window: job
    ids begin with their creation time, so both the blob listing (by name prefix) and the job
    rows (by RowKey range) are ranges of that window."""
    end = now - ORPHAN_INPUT_AGE
    start = end - ORPHAN_INPUT_WINDOW
    try:
        prefixes = {job_id_time_prefix(end, _BUCKET_CHARS)}
        at = start
        while at < end:
            prefixes.add(job_id_time_prefix(at, _BUCKET_CHARS))
            at += _BUCKET
        stored = {
            job_id
            for prefix in sorted(prefixes)
            for job_id in svc.blobs.job_ids_with_prefix(prefix)
            if start <= job_id_time(job_id) < end
        }
        if not stored:
            return
        # newest_first_key reverses the order: the window's newest ids have the smallest keys.
        first = newest_first_key("fj_" + job_id_time_prefix(end))
        last = newest_first_key("fj_" + job_id_time_prefix(start)) + "~"
        with_rows = svc.jobs.job_ids_between(first, last)
    except FoundryError as exc:
        report.errors.append(f"orphan inputs: {exc}")
        return
    for job_id in sorted(stored - with_rows):
        try:
            svc.blobs.delete_inputs(job_id)
            report.inputs_removed.append(job_id)
        except FoundryError as exc:
            report.errors.append(f"{job_id}: orphan inputs: {exc}")


async def purge_history(
    svc: Services, client: DurableClient, now: datetime, report: MaintenanceReport
) -> None:
    cutoff = now - timedelta(days=svc.settings.history_retention_days)
    due = await asyncio.to_thread(svc.jobs.purge_due, cutoff)
    for job in due:
        try:
            await client.purge_instance_history(job.job_id)
            await asyncio.to_thread(
                svc.jobs.update, job.job_id, lambda j: replace(j, phase=PURGED_PHASE)
            )
            report.purged.append(job.job_id)
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"{job.job_id}: purge: {exc}")
