"""Job rows, their index and history in Table storage against Azurite: ETag-guarded transitions,
listing, counts, the index invariant and reads that do not grow with finished jobs."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import UpdateMode

from shared.domain.ids import new_job_id, newest_first_key
from shared.domain.models import CLEANED_PHASE, PURGED_PHASE, JobStatus
from shared.errors import IllegalTransition, NotFound, QueueFull
from shared.storage import job_index as ix
from shared.storage.clients import table_service
from shared.storage.job_index import index_rows
from shared.storage.job_store import (
    POSITIONS_MAX_AGE_SECS,
    JobStore,
    entity_to_record,
    record_to_entity,
)
from tests.seed_jobs import seed_finished_jobs
from tests.shared.storage.jobs import new_job


def test_job_round_trips_through_the_table(services) -> None:
    job = new_job(org_slug="acme", quality={"audit": "pass", "findings": {"high": 1}})
    services.jobs.insert_job(job)
    loaded = services.jobs.get_job(job.job_id)
    assert loaded.etag
    assert replace(loaded, etag=None) == replace(job, created_at=loaded.created_at)
    assert abs(loaded.created_at - job.created_at) < timedelta(milliseconds=1)
    with pytest.raises(NotFound):
        services.jobs.get_job(new_job_id())


def test_transitions_follow_the_state_machine_and_write_history(services) -> None:
    job = new_job()
    services.jobs.insert_job(job)
    services.jobs.transition(job.job_id, JobStatus.BUILDING, reason="slot")
    with pytest.raises(IllegalTransition):
        services.jobs.transition(job.job_id, JobStatus.READY, reason="skip deploying")
    with pytest.raises(IllegalTransition):
        services.jobs.transition(
            job.job_id, JobStatus.CANCELED, reason="x", only_from=[JobStatus.QUEUED]
        )
    services.jobs.transition(job.job_id, JobStatus.CANCELED, reason="by caller")
    with pytest.raises(IllegalTransition):
        services.jobs.transition(job.job_id, JobStatus.BUILDING, reason="resurrect")
    history = services.jobs.list_history(job.job_id)
    assert [(r["from_status"], r["to_status"]) for r in history] == [
        ("", "queued"),
        ("queued", "building"),
        ("building", "canceled"),
    ]


def test_concurrent_transitions_are_etag_guarded_exactly_one_wins(services) -> None:
    job = new_job()
    services.jobs.insert_job(job)
    services.jobs.transition(job.job_id, JobStatus.BUILDING, reason="slot")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def race(target: JobStatus) -> None:
        barrier.wait()
        try:
            services.jobs.transition(job.job_id, target, reason=f"race {target.value}")
            outcomes.append(target.value)
        except IllegalTransition:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=race, args=(t,)) for t in [JobStatus.CANCELED, JobStatus.FAILED] * 4
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("refused") == 7
    final = services.jobs.get_job(job.job_id).status.value
    assert final in outcomes
    assert len(services.jobs.list_history(job.job_id)) == 3


def test_progress_updates_never_change_status(services) -> None:
    job = new_job()
    services.jobs.insert_job(job)
    with pytest.raises(IllegalTransition):
        services.jobs.update(job.job_id, lambda j: replace(j, status=JobStatus.READY))
    updated = services.jobs.update(job.job_id, lambda j: replace(j, percent=40))
    assert updated.percent == 40 and services.jobs.get_job(job.job_id).percent == 40


def test_listing_is_newest_first_with_a_working_cursor(services) -> None:
    ids = []
    for i in range(7):
        job = new_job(owner="bob" if i % 2 else "alice")
        services.jobs.insert_job(job)
        ids.append(job.job_id)
    seen, cursor = [], None
    while True:
        page, cursor = services.jobs.list_jobs(page_size=3, cursor=cursor)
        seen.extend(j.job_id for j in page)
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bobs, _ = services.jobs.list_jobs(owner="bob", page_size=50)
    assert [j.job_id for j in bobs] == [ids[5], ids[3], ids[1]]
    with pytest.raises(ValueError, match="cursor"):
        services.jobs.list_jobs(cursor="!!!")


def test_queue_position_and_counts(services) -> None:
    jobs = [new_job() for _ in range(3)]
    for job in jobs:
        services.jobs.insert_job(job)
    assert [services.jobs.queue_position(j) for j in jobs] == [1, 2, 3]
    services.jobs.transition(jobs[0].job_id, JobStatus.BUILDING, reason="slot")
    assert services.jobs.queue_position(services.jobs.get_job(jobs[0].job_id)) is None
    assert services.jobs.queue_position(jobs[2]) == 2
    assert services.jobs.count([JobStatus.QUEUED]) == 2
    positions = services.jobs.queue_positions([services.jobs.get_job(j.job_id) for j in jobs])
    assert positions == {jobs[0].job_id: None, jobs[1].job_id: 1, jobs[2].job_id: 2}
    assert services.jobs.count([JobStatus.QUEUED, JobStatus.BUILDING]) == 3


# -- the index -------------------------------------------------------------------------------
def stored_index_rows(services, job_id: str) -> set[str]:
    """Every index row of one job, found by scanning all index rows (fine in a test)."""
    rows = services.jobs.jobs.query_entities(
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        parameters={"pk": ix.PARTITION, "lo": "~", "hi": "~~"},
    )
    return {
        r["RowKey"]
        for r in rows
        if r.get("job_id") == job_id and not r["RowKey"].startswith(ix.HISTORY)
    }


def expected_index_rows(services, job_id: str) -> set[str]:
    entity = services.jobs.jobs.get_entity(ix.PARTITION, newest_first_key(job_id))
    return set(index_rows(entity_to_record(entity), entity.get("qs")))


def assert_index_matches(services, job_id: str) -> None:
    assert stored_index_rows(services, job_id) == expected_index_rows(services, job_id)


def test_index_rows_match_the_job_row_after_every_write(services) -> None:
    jobs = services.jobs
    job = new_job()
    jobs.insert_job(job, queue_cap=5)
    assert_index_matches(services, job.job_id)
    assert {k[:3] for k in stored_index_rows(services, job.job_id)} == {ix.ACTIVE, ix.QUEUE}
    now = datetime.now(UTC)
    steps = [
        lambda: jobs.update(job.job_id, lambda j: replace(j, percent=3, phase="slot")),
        lambda: jobs.transition(job.job_id, JobStatus.BUILDING, reason="slot", started_at=now),
        lambda: jobs.transition(job.job_id, JobStatus.DEPLOYING, reason="built"),
        lambda: jobs.transition(
            job.job_id,
            JobStatus.READY,
            reason="healthy",
            finished_at=now,
            preview_expires_at=now + timedelta(hours=1),
        ),
        lambda: jobs.transition(job.job_id, JobStatus.EXPIRED, reason="ttl"),
        lambda: jobs.update(job.job_id, lambda j: replace(j, phase=PURGED_PHASE)),
    ]
    for step in steps:
        step()
        assert_index_matches(services, job.job_id)
    assert stored_index_rows(services, job.job_id) == set()
    assert len(jobs.queue_snapshot()) == 0
    history = [(r["from_status"], r["to_status"]) for r in jobs.list_history(job.job_id)]
    assert history == [
        ("", "queued"),
        ("queued", "building"),
        ("building", "deploying"),
        ("deploying", "ready"),
        ("ready", "expired"),
    ]


def test_canceled_jobs_are_watched_until_cleaned_and_purged_when_due(services) -> None:
    jobs = services.jobs
    job = new_job()
    jobs.insert_job(job)
    finished = datetime.now(UTC)
    jobs.transition(job.job_id, JobStatus.CANCELED, reason="caller", finished_at=finished)
    assert_index_matches(services, job.job_id)
    hour = timedelta(hours=1)
    assert [e.job_id for e in jobs.canceled_since(finished - hour)] == [job.job_id]
    assert jobs.canceled_since(finished + hour) == []
    assert jobs.purge_due(finished) == []
    assert [e.job_id for e in jobs.purge_due(finished + hour)] == [job.job_id]
    jobs.update(job.job_id, lambda j: replace(j, phase=CLEANED_PHASE))
    assert_index_matches(services, job.job_id)
    assert jobs.canceled_since(finished - hour) == []
    assert [e.job_id for e in jobs.purge_due(finished + hour)] == [job.job_id]
    assert jobs.active() == []


def test_the_queue_cap_is_exact_and_positions_follow_submit_order(services) -> None:
    jobs = services.jobs
    queued = [new_job() for _ in range(3)]
    inserted = [jobs.insert_job(j, queue_cap=3) for j in queued]
    assert [i.queue_position for i in inserted] == [1, 2, 3]
    with pytest.raises(QueueFull):
        jobs.insert_job(new_job(), queue_cap=3)
    jobs.transition(queued[1].job_id, JobStatus.CANCELED, reason="x", finished_at=datetime.now(UTC))
    assert jobs.queue_position(queued[2]) == 2
    assert jobs.insert_job(new_job(), queue_cap=3).queue_position == 3
    assert {e.slot for e in jobs.queue_snapshot().entries} == {0, 1, 2}


def test_rows_from_before_the_index_are_adopted(services) -> None:
    jobs = services.jobs
    legacy = [new_job(), new_job(status=JobStatus.BUILDING), new_job(status=JobStatus.FAILED)]
    for job in legacy:
        entity = record_to_entity(job)
        del entity["ix"]
        jobs.jobs.create_entity(entity)
    jobs.insert_job(new_job(), queue_cap=5)
    assert len(jobs.active()) == 1  # the legacy rows are not indexed yet
    # A legacy row's first write indexes it (there is nothing of it to delete).
    jobs.transition(legacy[1].job_id, JobStatus.DEPLOYING, reason="built")
    assert_index_matches(services, legacy[1].job_id)
    assert jobs.reindex() == 2
    assert jobs.reindex() == 0
    for job in legacy:
        assert_index_matches(services, job.job_id)
    assert len(jobs.active()) == 3
    assert jobs.count([JobStatus.QUEUED]) == 2
    jobs.transition(legacy[0].job_id, JobStatus.BUILDING, reason="slot")
    assert_index_matches(services, legacy[0].job_id)
    assert jobs.count([JobStatus.QUEUED]) == 1


def test_a_missing_index_row_does_not_block_a_write(services) -> None:
    jobs = services.jobs
    job = new_job()
    jobs.insert_job(job)
    jobs.jobs.delete_entity(ix.PARTITION, ix.ACTIVE + newest_first_key(job.job_id))
    jobs.transition(job.job_id, JobStatus.BUILDING, reason="slot")
    assert_index_matches(services, job.job_id)


def test_hot_path_reads_do_not_grow_with_finished_jobs(metered) -> None:
    """Poll (read + queue position), the first page of a list, and the sweeps' index reads
    return as many entities with 2,000 finished jobs stored as with none."""
    svc, meter = metered
    clock = SteppedClock()  # each measurement reads the queue afresh, not the poll's copy of it
    jobs = metered_store(svc, meter, clock)
    active = [new_job() for _ in range(3)]
    for job in active:
        jobs.insert_job(job, queue_cap=50)
    jobs.transition(active[0].job_id, JobStatus.BUILDING, reason="slot")
    now = datetime.now(UTC)

    def reads() -> dict[str, tuple[int, int]]:
        out = {}
        for name, call in {
            "poll": lambda: jobs.queue_position(jobs.get_job(active[2].job_id)),
            "list": lambda: jobs.queue_positions(jobs.list_jobs(page_size=20)[0]),
            "active": jobs.active,
            "canceled": lambda: jobs.canceled_since(now - timedelta(days=1)),
            "purge": lambda: jobs.purge_due(now - timedelta(days=30)),
            "queued": lambda: jobs.count([JobStatus.QUEUED]),
        }.items():
            clock.now += POSITIONS_MAX_AGE_SECS
            with meter.measure() as tally:
                call()
            out[name] = (tally.round_trips, tally.entities_read)
        return out

    empty = reads()
    seed_finished_jobs(jobs, 1000, now=now)
    some = reads()
    seed_finished_jobs(jobs, 1000, now=now, seed=8)
    more = reads()
    assert empty["poll"] == (2, 1 + 2)  # the job row, then the two queue rows
    assert empty["active"] == (1, 3) and empty["queued"] == (1, 2)
    assert {k: v for k, v in empty.items() if k != "list"} == {
        k: v for k, v in more.items() if k != "list"
    }
    # A list page reads one page: at most page size + queue rows, however many jobs exist.
    assert some["list"] == more["list"] == (2, 20 + 2)
    assert jobs.count([JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED]) == 2000


class SteppedClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def metered_store(svc, meter, clock: SteppedClock) -> JobStore:
    """The app's job store with its reads metered and its clock moved by the test."""
    tables = table_service(svc.settings, **meter.client_options())
    return JobStore(tables, prefix=svc.settings.table_prefix, clock=clock)


def test_draining_a_queue_reads_it_once_per_interval_not_once_per_poll(metered) -> None:
    """Q queued jobs, each polled once per second while the queue drains one job at a time:
    the queue is read once per second for all the polls (O(Q) entities a second, O(Q^2) for the
    drain, where one read per poll made it O(Q^2) a second), and every position is right."""
    svc, meter = metered
    clock = SteppedClock()
    jobs = metered_store(svc, meter, clock)
    queued = [new_job() for _ in range(12)]
    for job in queued:
        jobs.insert_job(job, queue_cap=50)
    queue_rows_read = 0
    for started in range(len(queued)):
        clock.now += POSITIONS_MAX_AGE_SECS  # one second passes between polling rounds
        waiting = queued[started:]
        with meter.measure() as tally:
            positions = [jobs.queue_position(jobs.get_job(j.job_id)) for j in waiting]
        assert positions == list(range(1, len(waiting) + 1))
        # One point read per poll, and one read of the queue for the whole round.
        assert tally.round_trips == len(waiting) + 1
        queue_rows_read += tally.entities_read - len(waiting)
        # The head starts building (in another process: this one's copy is not told).
        other = JobStore(table_service(svc.settings), prefix=svc.settings.table_prefix)
        other.transition(waiting[0].job_id, JobStatus.BUILDING, reason="slot")
    assert queue_rows_read == sum(range(1, len(queued) + 1))  # each round: the rows still queued


def test_a_process_sees_its_own_queue_change_at_once(services) -> None:
    clock = SteppedClock()  # frozen: only a change this process made refreshes the copy
    jobs = JobStore(
        table_service(services.settings), prefix=services.settings.table_prefix, clock=clock
    )
    first, second = new_job(), new_job()
    jobs.insert_job(first, queue_cap=50)
    jobs.insert_job(second, queue_cap=50)
    assert jobs.queue_position(second) == 2
    jobs.transition(first.job_id, JobStatus.BUILDING, reason="slot")
    assert jobs.queue_position(second) == 1
    # A change made elsewhere shows once the copy is older than the bound.
    other = JobStore(table_service(services.settings), prefix=services.settings.table_prefix)
    third = new_job()
    other.insert_job(third, queue_cap=50)
    other.transition(second.job_id, JobStatus.CANCELED, reason="x", finished_at=datetime.now(UTC))
    assert jobs.queue_position(third) == 2  # the copy still has the canceled job in it
    clock.now += POSITIONS_MAX_AGE_SECS
    assert jobs.queue_position(third) == 1


def test_rows_left_by_code_without_the_index_are_cleaned_up(services) -> None:
    """A rolling upgrade: an instance still on the old code moves an indexed queued job on
    without touching its index rows (and drops ``ix``). The next write by this code finds
    every row the job could have had and deletes the stale ones."""
    jobs = services.jobs
    job = new_job()
    jobs.insert_job(job, queue_cap=5)
    old_write = record_to_entity(replace(job, status=JobStatus.BUILDING))
    del old_write["ix"]
    jobs.jobs.upsert_entity(old_write, mode=UpdateMode.REPLACE)
    assert jobs.count([JobStatus.QUEUED]) == 1  # its stale slot still counts
    jobs.transition(job.job_id, JobStatus.CANCELED, reason="x", finished_at=datetime.now(UTC))
    assert_index_matches(services, job.job_id)
    assert jobs.count([JobStatus.QUEUED]) == 0 and jobs.active() == []
