"""Cancel in every phase, DELETE preview, TTL reaper, reconciler, orphan sweep, concurrency."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from devhost.binding import client_binding
from devhost.http_host import FunctionHost
from devhost.loopback import free_port
from devhost.worker import run_in_worker
from shared.backends.base import StepState
from shared.domain.models import JobStatus
from shared.pipeline import lifecycle
from tests.conftest import Api, submission
from tests.scripted_backend import ScriptedBackend
from timers.sweeps import run_maintenance


@pytest.fixture
def scripted(services) -> ScriptedBackend:
    backend = ScriptedBackend(auto=False)
    services.backend = backend
    return backend


def submit(api, **overrides) -> str:
    status, body, _ = api.call("POST", "/v1/jobs", body=submission(**overrides))
    assert status == 202, body
    return str(body["job_id"])


def phase_is(name: str):
    return lambda inst: (inst.custom_status or {}).get("phase") == name


def assert_nothing_left(services, scripted: ScriptedBackend, job_id: str) -> None:
    assert scripted.resources.get(job_id) is None
    assert all(
        services.tokens.table.get_entity("token", h)["revoked"]
        for h in services.tokens.hashes_for_job(job_id)
    )


@pytest.mark.parametrize("phase", ["slot", "build_wait", "image_wait", "preview_wait"])
def test_cancel_in_every_phase_tears_everything_down(
    api, driver, services, scripted, phase
) -> None:
    if phase == "slot":  # hold the only build slot with another job
        services.settings = services.settings.__class__(
            **{**services.settings.__dict__, "max_concurrent_builds": 1}
        )
        blocker = submit(api, app_name="blocker", idempotency_key="b")
        driver.run_to_completion(blocker, until=phase_is("build_wait"))
    job_id = submit(api)
    if phase == "image_wait":
        driver.run_to_completion(job_id, until=phase_is("build_wait"))
        scripted.finish_build(job_id)
    elif phase == "preview_wait":
        driver.run_to_completion(job_id, until=phase_is("build_wait"))
        scripted.finish_build(job_id)
        driver.run_to_completion(job_id, until=phase_is("image_wait"))
        scripted.image_state[job_id] = StepState.SUCCEEDED
    driver.run_to_completion(job_id, until=phase_is(phase))
    before = services.jobs.get_job(job_id).status
    status, view, _ = api.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 200 and view["status"] == "canceled", view
    assert view["error"] == {"code": "canceled", "message": "canceled by caller"}
    inst = driver.run_to_completion(job_id)
    assert inst.output["status"] == "canceled"
    assert_nothing_left(services, scripted, job_id)
    history = [r["to_status"] for r in services.jobs.list_history(job_id)]
    assert history[-2:] == [before.value, "canceled"]
    # Cancel is not repeatable, and the app name is free again.
    status, body, _ = api.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 400 and body["error"] == "validation_error"
    assert submit(api, idempotency_key="fresh") != job_id


def test_cancel_of_ready_is_refused_use_delete_preview(api, driver, services, scripted) -> None:
    scripted.auto = True
    job_id = submit(api)
    driver.run_to_completion(job_id)
    status, body, _ = api.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 400 and body["message"] == "job is already in a terminal state"
    assert scripted.resources[job_id]  # the live preview keeps its resources
    status, body, _ = api.call("DELETE", f"/v1/jobs/{job_id}/preview")
    assert status == 204 and body == ""
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert view["status"] == "expired" and view["preview_url"] is None
    assert scripted.resources.get(job_id) is None
    status, body, _ = api.call("DELETE", f"/v1/jobs/{job_id}/preview")
    assert status == 400 and body["message"] == "job has no active preview"


def test_ttl_reaper_expires_previews_and_tears_them_down(
    api, driver, client, services, scripted
) -> None:
    scripted.auto = True
    short = submit(api, app_name="short", idempotency_key="s", preview_ttl_hours=1)
    long = submit(api, app_name="long", idempotency_key="l", preview_ttl_hours=72)
    for job_id in (short, long):
        driver.run_to_completion(job_id)
    later = datetime.now(UTC) + timedelta(hours=2)
    report = run_in_worker(run_maintenance(services, client, now=later))
    assert report.expired == [short]
    _, view, _ = api.call("GET", f"/v1/jobs/{short}")
    assert view["status"] == "expired" and view["preview_url"]  # kept, as the contract does
    assert scripted.resources.get(short) is None and scripted.resources[long]
    assert submit(api, app_name="short", idempotency_key="s2") != short  # name freed


def test_timer_trigger_runs_the_maintenance_pass(api, client, services) -> None:
    asyncio.run(api.host.run_timer("maintenance"))  # nothing to do, but it must run cleanly


def test_reconciler_repairs_rows_whose_orchestration_died(
    api, driver, client, services, scripted
) -> None:
    job_id = submit(api)
    driver.run_to_completion(job_id, until=phase_is("build_wait"))
    driver.terminate(job_id, "operator")
    assert services.jobs.get_job(job_id).status is JobStatus.BUILDING
    report = run_in_worker(run_maintenance(services, client))
    assert report.repaired == [job_id]
    job = services.jobs.get_job(job_id)
    assert job.status is JobStatus.FAILED and job.error_code == "internal_error"
    assert "Terminated" in (job.error_message or "")
    assert_nothing_left(services, scripted, job_id)


def test_reconciler_starts_jobs_whose_orchestration_never_started(
    services, driver, client, scripted
) -> None:
    # The host's management API does not answer: nothing listens where the binding points.
    unreachable = client_binding(f"http://127.0.0.1:{free_port()}", "some-key")
    api = Api(FunctionHost(function_app.app, unreachable))
    job_id = submit(api)  # accepted even though the orchestration could not start
    assert job_id not in driver.instances
    report = run_in_worker(run_maintenance(services, client, now=datetime.now(UTC)))
    assert report.restarted == []  # within the grace period
    later = datetime.now(UTC) + timedelta(minutes=5)
    report = run_in_worker(run_maintenance(services, client, now=later))
    assert report.restarted == [job_id]
    scripted.auto = True
    assert driver.run_to_completion(job_id).output["status"] == "ready"


def test_reconciler_resignals_a_lost_cancel(api, driver, client, services, scripted) -> None:
    job_id = submit(api)
    driver.run_to_completion(job_id, until=phase_is("build_wait"))
    lifecycle.cancel_job(services, job_id)  # row canceled, but no event reached the orchestrator
    report = run_in_worker(run_maintenance(services, client))
    assert report.resignaled == [job_id]
    driver.run_to_completion(job_id)
    assert_nothing_left(services, scripted, job_id)


def test_orphan_sweep_removes_resources_without_a_live_job(services, client, scripted) -> None:
    scripted.resources["fj_01JORPHANORPHANORPHANORPHA"] = {"build", "preview"}
    report = run_in_worker(run_maintenance(services, client))
    assert report.orphans_removed == ["fj_01JORPHANORPHANORPHANORPHA"]
    assert scripted.resources == {}


def test_history_is_purged_after_retention(api, driver, client, services, scripted) -> None:
    job_id = submit(api)
    api.call("POST", f"/v1/jobs/{job_id}/cancel")
    driver.run_to_completion(job_id)
    soon = run_in_worker(run_maintenance(services, client))
    assert soon.purged == [] and job_id in driver.instances
    later = datetime.now(UTC) + timedelta(days=services.settings.history_retention_days + 1)
    report = run_in_worker(run_maintenance(services, client, now=later))
    assert report.purged == [job_id] and job_id not in driver.instances
    assert run_in_worker(run_maintenance(services, client, now=later)).purged == []


def test_build_slots_limit_concurrent_builds(api, driver, services, scripted) -> None:
    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "max_concurrent_builds": 1}
    )
    first = submit(api, app_name="first", idempotency_key="1")
    second = submit(api, app_name="second", idempotency_key="2")
    driver.run_to_completion(first, until=phase_is("build_wait"))
    driver.advance(timedelta(minutes=5))
    assert services.jobs.get_job(second).status is JobStatus.QUEUED
    _, view, _ = api.call("GET", f"/v1/jobs/{second}")
    assert view["queue_position"] == 1
    scripted.auto = True
    driver.run_to_completion(first)
    assert driver.run_to_completion(second).output["status"] == "ready"


def test_fifty_concurrent_identical_submits_create_one_job(api, driver, services) -> None:
    body = json.dumps(submission()).encode()
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(50)

    def one() -> None:
        barrier.wait()
        status, reply, _ = api.call("POST", "/v1/jobs", raw=body)
        results.append((status, reply.get("job_id", reply.get("error"))))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50
    assert {status for status, _ in results} == {202}, results
    assert len({job_id for _, job_id in results}) == 1
    jobs, _ = services.jobs.list_jobs(page_size=100)
    assert len(jobs) == 1
    assert list(driver.instances) == [jobs[0].job_id]


def test_sweeps_skip_jobs_that_need_nothing_more(api, driver, client, services, scripted) -> None:
    """Canceled jobs leave the reconciler once cleaned; purge only sees old, unpurged jobs."""
    job_id = submit(api)
    api.call("POST", f"/v1/jobs/{job_id}/cancel")
    driver.run_to_completion(job_id)
    assert services.jobs.get_job(job_id).phase == "cleaned"
    calls: list[str] = []
    original = client.get_status

    async def counting(instance_id: str, *args, **kwargs):
        calls.append(instance_id)
        return await original(instance_id, *args, **kwargs)

    client.get_status = counting
    later = datetime.now(UTC) + timedelta(minutes=5)
    run_in_worker(run_maintenance(services, client, now=later))
    assert calls == []  # nothing in flight, and the canceled job is known to be clean
    jobs = services.jobs.iter_jobs([JobStatus.CANCELED], finished_before=later, phase_not="purged")
    assert [j.job_id for j in jobs] == [job_id]
    assert (
        services.jobs.iter_jobs(
            [JobStatus.CANCELED], finished_before=datetime.now(UTC) - timedelta(days=1)
        )
        == []
    )


def test_the_configured_poll_cap_reaches_the_orchestration(api, driver, services, scripted) -> None:
    """End to end, not stubbed: FOUNDRY_SERVICE_POLL_MAX_SECS travels from settings through the
    real start_build activity's PhaseLimits into the orchestration's timers."""
    from dataclasses import replace

    services.settings = replace(services.settings, poll_max_secs=5, check_wait_secs=0)
    job_id = submit(api)
    driver.run_to_completion(job_id, until=phase_is("build_wait"))
    scripted.finish_build(job_id)
    driver.run_to_completion(job_id, until=phase_is("image_wait"))
    fired: list[datetime] = []
    while len(fired) < 8:
        assert driver.jump_to_next_timer()
        fired.append(driver.now())
        driver.run_until_idle()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fired)]
    assert gaps == [4.0] + [5.0] * 6, gaps  # 3 s, 4 s, then capped at 5 s (not 6, 10, ...)
