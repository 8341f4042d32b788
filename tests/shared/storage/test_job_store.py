"""Job rows and their history in Table storage against Azurite: ETag-guarded transitions, listing, counts."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.domain.ids import new_job_id
from shared.domain.models import JobStatus
from shared.errors import IllegalTransition, NotFound
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
