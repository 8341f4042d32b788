"""Build slots: exact under concurrent claims."""

from __future__ import annotations

import threading

from shared.domain.models import JobStatus
from tests.shared.storage.jobs import new_job


def test_build_slots_are_exact_under_concurrent_claims(services) -> None:
    """Twelve queued jobs claim at once with three slots: exactly three start building."""
    from shared.pipeline import steps

    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "max_concurrent_builds": 3}
    )
    jobs = [new_job(app_name=f"app-{i}") for i in range(12)]
    for job in jobs:
        services.jobs.insert_job(job)
    barrier = threading.Barrier(len(jobs))
    results: dict[str, bool] = {}

    def claim(job_id: str) -> None:
        barrier.wait()
        results[job_id] = steps.claim_build_slot(services, job_id).done

    threads = [threading.Thread(target=claim, args=(j.job_id,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 3
    assert services.jobs.count([JobStatus.BUILDING]) == 3
    # A finished holder frees its slot without any explicit release.
    winner = next(j for j, ok in results.items() if ok)
    services.jobs.transition(winner, JobStatus.FAILED, reason="test")
    waiting = next(j for j, ok in results.items() if not ok)
    assert steps.claim_build_slot(services, waiting).done
    assert steps.claim_build_slot(services, waiting).done  # holding it is idempotent


def test_the_queue_wakes_as_many_jobs_as_slots_are_free(services) -> None:
    """Two of three builders exit at once: both slots go to the two oldest waiting jobs, though
    the finished jobs stay ``building`` until their orchestrations check the build."""
    from shared.pipeline import lifecycle, steps

    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "max_concurrent_builds": 3}
    )
    jobs = [new_job(app_name=f"app-{i}") for i in range(6)]
    for job in jobs:
        services.jobs.insert_job(job)
    building, waiting = [j.job_id for j in jobs[:3]], [j.job_id for j in jobs[3:]]
    for job_id in building:
        assert steps.claim_build_slot(services, job_id).done
    assert lifecycle.next_in_queue(services) == waiting[:1]  # all busy: still one, to self-heal
    for job_id in building[:2]:
        assert services.slots.release(job_id)  # the builder exited; the job is still building
    assert services.jobs.find_job(building[0]).status is JobStatus.BUILDING
    assert lifecycle.next_in_queue(services) == waiting[:2]
    # A woken job that has claimed is not woken again; the third one is next.
    assert steps.claim_build_slot(services, waiting[0]).done
    assert lifecycle.next_in_queue(services) == waiting[1:2]
