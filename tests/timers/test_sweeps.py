"""Maintenance sweeps against Azurite: they read the index (so a pass costs the same however many
finished jobs are kept), and inputs orphaned by a submit that died are removed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ulid import ULID

from devhost.worker import run_in_worker
from shared.domain.models import JobRecord, JobStatus
from tests.seed_jobs import seed_finished_jobs
from timers.sweeps import (
    ORPHAN_INPUT_AGE,
    ORPHAN_INPUT_EVERY_MINUTES,
    MaintenanceReport,
    run_maintenance,
    sweep_orphan_inputs,
)


def aligned_now() -> datetime:
    """A moment at which the pass includes the orphan-input sweep."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % ORPHAN_INPUT_EVERY_MINUTES)


def job_minted_at(at: datetime, **changes) -> JobRecord:
    base = JobRecord(
        job_id=f"fj_{ULID.from_datetime(at)}",
        app_name="app",
        owner="alice",
        request_hash="h",
        created_at=at,
        ttl_hours=24,
    )
    return replace(base, **changes)


def inputs_of(services, job_id: str) -> list[str]:
    return [b.name for b in services.blobs.container.list_blobs(name_starts_with=f"jobs/{job_id}/")]


def test_inputs_without_a_job_row_are_removed_once_old_enough(services) -> None:
    now = datetime.now(UTC)
    orphan = job_minted_at(now - ORPHAN_INPUT_AGE - timedelta(minutes=5))
    accepted = job_minted_at(now - ORPHAN_INPUT_AGE - timedelta(minutes=6))
    young = job_minted_at(now - timedelta(minutes=2))
    for job in (orphan, accepted, young):
        services.blobs.put_inputs(job.job_id, spec_md="# s\n", tasks_md="- [ ] t\n")
    services.jobs.insert_job(accepted)
    report = MaintenanceReport()
    sweep_orphan_inputs(services, now, report)
    assert report.inputs_removed == [orphan.job_id] and report.errors == []
    assert inputs_of(services, orphan.job_id) == []
    assert len(inputs_of(services, accepted.job_id)) == 1
    assert len(inputs_of(services, young.job_id)) == 1
    later = MaintenanceReport()
    sweep_orphan_inputs(services, now + timedelta(minutes=10), later)
    assert later.inputs_removed == [young.job_id]


def test_the_pass_runs_the_orphan_input_sweep_every_few_minutes(services, client) -> None:
    now = aligned_now()
    orphan = job_minted_at(now - ORPHAN_INPUT_AGE - timedelta(minutes=1))
    services.blobs.put_inputs(orphan.job_id, spec_md="# s\n", tasks_md="- [ ] t\n")
    off_beat = run_in_worker(run_maintenance(services, client, now=now + timedelta(minutes=1)))
    assert off_beat.inputs_removed == []
    assert run_in_worker(run_maintenance(services, client, now=now)).inputs_removed == [
        orphan.job_id
    ]


def test_a_maintenance_pass_reads_the_same_with_1000_finished_jobs(metered, client) -> None:
    svc, meter = metered
    now = aligned_now()
    for _ in range(3):
        svc.jobs.insert_job(job_minted_at(datetime.now(UTC)), queue_cap=50)
    ready = job_minted_at(datetime.now(UTC))
    svc.jobs.insert_job(ready, queue_cap=50)
    for target in (JobStatus.BUILDING, JobStatus.DEPLOYING):
        svc.jobs.transition(ready.job_id, target, reason="test")
    svc.jobs.transition(
        ready.job_id,
        JobStatus.READY,
        reason="test",
        finished_at=now,
        preview_expires_at=now + timedelta(hours=1),
    )

    def one_pass() -> tuple[int, int]:
        with meter.measure() as tally:
            report = run_in_worker(run_maintenance(svc, client, now=now))
        assert not any(report.to_dict().values()), report
        return tally.round_trips, tally.entities_read

    empty = one_pass()
    seed_finished_jobs(svc.jobs, 1000, now=now)
    crowded = one_pass()
    assert empty == crowded
    assert empty[1] == 4  # the four active rows; nothing canceled, nothing due for a purge
