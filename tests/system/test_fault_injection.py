"""Faults: activities that run but lose their completion (at-least-once), a host restart that
replays the orchestration from scratch, and the storage emulator going away mid-job. Every run
must end in the right terminal state with nothing duplicated and nothing leaked."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import function_app
from activities import names
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from devhost.loopback import DurableHttpHost
from shared.services import Services, use_services
from tests.azurite import free_port, start_azurite
from tests.conftest import Api, make_settings, submission
from tests.scripted_backend import REPORT, STREAM, ScriptedBackend

PIPELINE = [
    names.START_BUILD,
    names.CHECK_BUILD,
    names.CHECK_IMAGE,
    names.CHECK_PREVIEW,
    names.FINALIZE_READY,
]


def assert_clean_ready(services: Services, backend: ScriptedBackend, job_id: str) -> None:
    job = services.jobs.get_job(job_id)
    assert job.status.value == "ready", job.error_message
    assert backend.starts == {job_id: 1}  # one build execution, however often it was retried
    # The build got exactly one token. A retry after a failed start re-mints (revoking the
    # previous one first), so there may be several hashes, but none may stay live.
    assert len(backend.tokens_seen) == 1
    hashes = services.tokens.hashes_for_job(job_id)
    assert hashes
    assert all(services.tokens.table.get_entity("token", h)["revoked"] for h in hashes)
    assert services.blobs.read_log(job_id) == STREAM + REPORT  # no line appended twice
    history = [r["to_status"] for r in services.jobs.list_history(job_id)]
    assert history == ["queued", "building", "deploying", "ready"]
    assert job.percent == 100 and job.cost_usd == 0.75


@pytest.mark.parametrize("activity", PIPELINE)
def test_lost_completions_are_redelivered_without_duplicates(
    api, driver, services, activity
) -> None:
    backend = ScriptedBackend()
    services.backend = backend
    lost = {"left": 2}

    def lose(name: str, payload: object, attempt: int) -> None:
        if name == activity and lost["left"] > 0:
            lost["left"] -= 1
            raise ConnectionResetError("completion lost")

    driver.after_activity_hook = lose
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    inst = driver.run_to_completion(accepted["job_id"])
    assert lost["left"] == 0
    assert inst.output["status"] == "ready"
    assert_clean_ready(services, backend, accepted["job_id"])


def test_transient_failures_before_each_step_then_success(api, driver, services) -> None:
    backend = ScriptedBackend(flaky_calls=2)  # and then the backend fails twice (HTTP 503)
    services.backend = backend
    failures: dict[str, int] = {}

    def flaky(name: str, payload: object, attempt: int) -> None:
        if attempt <= 2:
            failures[name] = failures.get(name, 0) + 1
            raise TimeoutError(f"{name} timed out")

    driver.activity_hook = flaky
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    inst = driver.run_to_completion(accepted["job_id"])
    assert inst.output["status"] == "ready"
    assert set(failures) >= set(PIPELINE)
    assert_clean_ready(services, backend, accepted["job_id"])


def test_a_host_restart_replays_from_history_on_a_fresh_driver(api, driver, services) -> None:
    backend = ScriptedBackend(auto=False)
    services.backend = backend
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    # A new process: nothing survives but the orchestration's history and the storage.
    fresh = Driver(function_app.app)
    fresh.instances[job_id] = copy.deepcopy(driver.instances[job_id])
    fresh._now = driver.now()
    backend.auto = True
    inst = fresh.run_to_completion(job_id)
    assert inst.output["status"] == "ready"
    assert_clean_ready(services, backend, job_id)


@pytest.mark.azurite  # starts its own emulator, to kill and restart it
def test_storage_outage_mid_job_is_retried_until_it_recovers(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    data = tmp_path / "azurite-data"
    emulator = start_azurite(tmp_path / "log", ports=ports, location=data)
    driver = Driver(function_app.app)
    durable_host = DurableHttpHost(driver).start()
    try:
        settings = make_settings(emulator, tmp_path)
        backend = ScriptedBackend(auto=False)
        services = Services.build(settings, backend=backend, retry_total=0)
        use_services(services)
        api = Api(FunctionHost(function_app.app, durable_host.binding))
        _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
        job_id = accepted["job_id"]
        driver.run_to_completion(
            job_id, until=lambda i: i.custom_status.get("phase") == "build_wait"
        )
        emulator.stop()
        backend.auto = True
        seen: list[int] = []

        def outage(name: str, payload: object, attempt: int) -> None:
            nonlocal emulator
            seen.append(attempt)
            if attempt == 3 and emulator.process.poll() is not None:
                emulator = start_azurite(tmp_path / "log", ports=ports, location=data)

        driver.activity_hook = outage
        inst = driver.run_to_completion(job_id)
        assert seen[:3] == [1, 2, 3]  # two attempts failed while storage was down
        assert inst.output["status"] == "ready"
        assert_clean_ready(services, backend, job_id)
    finally:
        use_services(None)
        durable_host.stop()
        emulator.stop()
