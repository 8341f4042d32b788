"""Which index rows a job row implies, and the queue snapshot arithmetic (pure, no storage)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.ids import new_job_id, newest_first_key
from shared.domain.models import CLEANED_PHASE, PURGED_PHASE, JobRecord, JobStatus
from shared.storage import job_index as ix
from shared.storage.job_index import QueueEntry, QueueSnapshot, index_rows

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def job(**changes) -> JobRecord:
    base = JobRecord(
        job_id=new_job_id(),
        app_name="app",
        owner="alice",
        request_hash="h",
        created_at=NOW,
        ttl_hours=24,
    )
    return replace(base, **changes)


def kinds(rows: dict) -> set[str]:
    return {key[:3] for key in rows}


@pytest.mark.parametrize(
    ("status", "phase", "expected"),
    [
        (JobStatus.QUEUED, "queued", {ix.ACTIVE, ix.QUEUE}),
        (JobStatus.BUILDING, "building", {ix.ACTIVE}),
        (JobStatus.DEPLOYING, "image", {ix.ACTIVE}),
        (JobStatus.READY, "ready", {ix.ACTIVE}),
        (JobStatus.FAILED, "failed", {ix.PURGE}),
        (JobStatus.EXPIRED, "expired", {ix.PURGE}),
        (JobStatus.CANCELED, "canceled", {ix.CANCEL_WATCH, ix.PURGE}),
        (JobStatus.CANCELED, CLEANED_PHASE, {ix.PURGE}),
        (JobStatus.CANCELED, PURGED_PHASE, set()),
        (JobStatus.FAILED, PURGED_PHASE, set()),
    ],
)
def test_index_membership_follows_status_and_phase(status, phase, expected) -> None:
    finished = None if status.is_active and status is not JobStatus.READY else NOW
    rows = index_rows(job(status=status, phase=phase, finished_at=finished), queue_slot=3)
    assert kinds(rows) == expected
    assert all(row["PartitionKey"] == ix.PARTITION for row in rows.values())


def test_only_a_queued_job_with_a_slot_has_a_queue_row() -> None:
    queued = job()
    assert kinds(index_rows(queued, queue_slot=None)) == {ix.ACTIVE}
    assert ix.queue_key(7) in index_rows(queued, queue_slot=7)


def test_time_keyed_rows_sort_by_finish_time_and_stay_inside_their_prefix() -> None:
    early = job(status=JobStatus.FAILED, finished_at=NOW)
    late = job(status=JobStatus.FAILED, finished_at=NOW + timedelta(microseconds=1))
    (early_key,) = index_rows(early, None)
    (late_key,) = index_rows(late, None)
    assert ix.PURGE < early_key < late_key < ix.prefix_end(ix.PURGE)
    assert early_key < ix.PURGE + ix.stamp(NOW + timedelta(microseconds=1))
    # Job rows sort before every index row, so "RowKey lt ~" reads job rows only.
    assert newest_first_key(early.job_id) < ix.JOB_ROWS_END <= ix.ACTIVE


def test_history_rows_of_one_job_share_a_prefix_in_time_order() -> None:
    job_id = new_job_id()
    first = ix.history_row(job_id, None, JobStatus.QUEUED, "submitted", at=NOW, actor="k1")
    second = ix.history_row(
        job_id, JobStatus.QUEUED, JobStatus.BUILDING, "slot", at=NOW + timedelta(seconds=1)
    )
    prefix = f"{ix.HISTORY}{ix.job_key(job_id)}~"
    assert prefix < first["RowKey"] < second["RowKey"] < ix.prefix_end(prefix)
    assert (first["from_status"], first["to_status"], first["actor"]) == ("", "queued", "k1")
    assert "actor" not in second


def test_queue_snapshot_free_slots_and_positions() -> None:
    ids = sorted(new_job_id() for _ in range(3))
    snapshot = QueueSnapshot((QueueEntry(2, ids[1]), QueueEntry(0, ids[2]), QueueEntry(4, ids[0])))
    assert snapshot.free_slots(5) == [1, 3]
    assert snapshot.free_slots(3) == [1]
    assert QueueSnapshot(()).free_slots(0) == []
    assert [snapshot.position(i) for i in ids] == [1, 2, 3]
    assert snapshot.position(new_job_id()) == 4  # a newer job goes to the back
    unbounded = snapshot.free_slots(None)
    assert unbounded[:2] == [1, 3] and len(unbounded) > 2
