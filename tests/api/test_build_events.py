"""POST /v1/jobs/{id}/build-events: the runner's notices wake the orchestration at once, free
the build slot and wake the next queued job; the reconciler covers a lost notice."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from devhost.worker import run_in_worker
from shared.domain.models import JobStatus
from tests.conftest import submission
from tests.scripted_backend import ScriptedBackend
from timers.sweeps import run_maintenance


@pytest.fixture
def scripted(services) -> ScriptedBackend:
    # Production shape: the build's end is pushed, nothing polls it inside the orchestration.
    backend = ScriptedBackend(auto=False, notifies_build_end=True)
    services.backend = backend
    services.settings = replace(services.settings, build_check_secs=0)
    return backend


def in_build_wait(inst) -> bool:
    return (inst.custom_status or {}).get("phase") == "build_wait"


def submit(api, name: str = "pushed") -> str:
    status, body, _ = api.call("POST", "/v1/jobs", body=submission(name, idempotency_key=name))
    assert status == 202, body
    return str(body["job_id"])


def notice(api, job_id: str, token: str | None, event: str = "finished", raw: bytes | None = None):
    return api.call(
        "POST",
        f"/v1/jobs/{job_id}/build-events",
        body=None if raw is not None else {"event": event},
        raw=raw,
        key=token,
    )


def test_a_finished_notice_wakes_the_run_at_once(api, driver, services, scripted) -> None:
    job_id = submit(api)
    driver.run_to_completion(job_id, until=in_build_wait)
    began = driver.now()
    scripted.finish_build(job_id)
    scripted.auto = True  # image and preview finish on their first check
    status, body, _ = notice(api, job_id, scripted.tokens_seen[-1])
    assert status == 202, body
    inst = driver.run_to_completion(job_id)
    assert inst.output["status"] == "ready"
    assert driver.now() == began  # woken by the event, not by a timer or the deadline


def test_a_progress_notice_folds_the_log_into_the_job(api, driver, services, scripted) -> None:
    job_id = submit(api)
    driver.run_to_completion(job_id, until=in_build_wait)
    assert services.jobs.get_job(job_id).detail["tasks_total"] == 0
    status, _, _ = notice(api, job_id, scripted.tokens_seen[-1], event="progress")
    assert status == 202
    job = services.jobs.get_job(job_id)
    assert job.detail["tasks_total"] == 2 and job.cost_usd == 0.5
    assert job.status is JobStatus.BUILDING
    assert job.log_offset > 0


def test_the_slot_is_freed_and_the_next_job_woken_by_the_notice(
    api, driver, services, scripted
) -> None:
    services.settings = replace(services.settings, max_concurrent_builds=1)
    first, second = submit(api, "first"), submit(api, "second")
    driver.run_to_completion(first, until=in_build_wait)
    driver.run_until_idle()
    assert services.jobs.get_job(second).status is JobStatus.QUEUED  # asleep on its backoff
    began = driver.now()
    scripted.finish_build(first)
    status, _, _ = notice(api, first, scripted.tokens_seen[-1])
    assert status == 202
    driver.run_until_idle()  # no clock jump: the slot_freed event did it
    assert driver.now() == began
    assert services.jobs.get_job(second).status is JobStatus.BUILDING


@pytest.mark.parametrize(
    ("token", "raw", "expected", "code"),
    [
        (None, None, 401, "unauthorized"),
        ("fb_not-a-token", None, 401, "unauthorized"),
        ("OTHER", None, 401, "unauthorized"),
        ("OWN", b"{not json", 400, "validation_error"),
        ("OWN", b'{"event":"exploded"}', 400, "validation_error"),
        ("OWN", b'{"event":"finished","pad":"' + b"x" * 5000 + b'"}', 413, "payload_too_large"),
        ("OWN", b"[" * 4000, 400, "validation_error"),  # nesting deeper than json allows
    ],
)
def test_notices_are_refused_without_the_jobs_own_token_or_a_valid_body(
    api, driver, services, scripted, token, raw, expected, code
) -> None:
    job_id, other = submit(api, "mine"), submit(api, "theirs")
    driver.run_to_completion(job_id, until=in_build_wait)
    driver.run_to_completion(other, until=in_build_wait)
    tokens = dict(zip([job_id, other], scripted.tokens_seen, strict=True))
    sent = {"OWN": tokens[job_id], "OTHER": tokens[other]}.get(token, token)
    status, body, _ = notice(api, job_id, sent, raw=raw)
    assert (status, body["error"]) == (expected, code)
    assert services.jobs.get_job(job_id).log_offset == 0  # nothing was folded


def test_the_reconciler_raises_a_lost_notice(api, driver, client, services, scripted) -> None:
    job_id = submit(api)
    driver.run_to_completion(job_id, until=in_build_wait)
    still = run_in_worker(run_maintenance(services, client))
    assert job_id not in still.resignaled  # running: only its progress is folded
    assert services.jobs.get_job(job_id).log_offset > 0
    scripted.finish_build(job_id)  # the runner exited, but its notice never arrived
    scripted.auto = True
    report = run_in_worker(run_maintenance(services, client))
    assert report.resignaled == [job_id]
    began = driver.now()
    assert driver.run_to_completion(job_id, limit=timedelta(minutes=5)).output["status"] == "ready"
    assert driver.now() == began


def test_a_backend_that_cannot_push_is_checked_on_a_backoff(api, driver, services) -> None:
    """``BUILD_CHECK_SECS=0`` is auto: without pushed notices the run polls the build."""
    quiet = ScriptedBackend(auto=True, notifies_build_end=False)
    services.backend = quiet
    services.settings = replace(services.settings, build_check_secs=0, poll_max_secs=5)
    job_id = submit(api, "polled")
    inst = driver.run_to_completion(job_id, limit=timedelta(minutes=5))
    assert inst.output["status"] == "ready"  # no notice, no reconciler: polling found the end
    assert inst.input["job_id"] == job_id
