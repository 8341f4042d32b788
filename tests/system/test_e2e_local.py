"""End to end on the local backend: real builder subprocess, real preview server on loopback,
Azurite for state, the app's functions driven through the durable driver."""

from __future__ import annotations

import time
import urllib.request
from datetime import timedelta

import pytest

from shared.domain.models import JobStatus
from tests.conftest import submission
from tests.local_builds import settle


def run_job(api, driver, body, services, *, race_the_build: bool = False):
    """Submit and drive to the end. By default each virtual-clock jump waits for the real build
    to end; ``race_the_build`` lets virtual time run ahead of it (to reach its deadline)."""
    status, accepted, _ = api.call("POST", "/v1/jobs", body=body)
    assert status == 202, accepted
    job_id = accepted["job_id"]
    pace = (lambda: time.sleep(0.02)) if race_the_build else settle(services, job_id)
    inst = driver.run_to_completion(job_id, limit=timedelta(hours=3), between_timers=pace)
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    return inst, view


def test_submit_to_ready_serves_the_generated_app(api, driver, services) -> None:
    inst, view = run_job(
        api, driver, submission("hello-world", spec_md="# Hello World\n\nHi.\n"), services
    )
    assert inst.status == "Completed", inst.error
    assert view["status"] == "ready", view
    assert view["percent"] == 100
    assert view["quality"]["audit"] == "pass"
    assert view["detail"]["tasks_total"] == 3  # two tasks + the preview contract task
    assert view["cost_usd"] > 0
    assert view["preview_url"].startswith("http://127.0.0.1:")
    with urllib.request.urlopen(view["preview_url"], timeout=5) as resp:
        page = resp.read().decode()
    assert "Hello World" in page
    # The log was followed into the append blob while the build ran.
    status, text, headers = api.call("GET", f"/v1/jobs/{view['job_id']}/logs")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert '"schema_version":3' in text
    # Exactly one proxy token was minted, and it is revoked now that the job is ready.
    hashes = services.tokens.hashes_for_job(view["job_id"])
    assert len(hashes) == 1
    assert services.tokens.table.get_entity("token", hashes[0])["revoked"] is True


def test_builder_crash_fails_with_build_crashed_and_cleans_up(api, driver, services) -> None:
    inst, view = run_job(
        api, driver, submission("crashy", spec_md="# C\n<!-- foundry:crash -->"), services
    )
    assert inst.status == "Completed"
    assert view["status"] == "failed"
    assert view["error"]["code"] == "build_crashed"
    assert services.backend.list_resources() == []


def test_missing_app_fails_with_preview_deploy_failed(api, driver, services) -> None:
    inst, view = run_job(
        api, driver, submission("noapp", spec_md="# N\n<!-- foundry:no-app -->"), services
    )
    assert view["status"] == "failed"
    assert view["error"]["code"] == "preview_deploy_failed"
    # The source artifact was kept even though the preview failed.
    status, _, headers = api.call("GET", f"/v1/jobs/{view['job_id']}/artifact")
    assert status == 302
    assert services.backend.list_resources() == []


def test_build_timeout_stops_the_builder(api, driver, services, settings, monkeypatch) -> None:
    services.settings = settings.__class__(**{**settings.__dict__, "build_timeout_secs": 60})
    body = submission("slowpoke", spec_md="# S\n<!-- foundry:sleep=30 -->")
    inst, view = run_job(api, driver, body, services, race_the_build=True)
    assert view["status"] == "failed", view
    assert view["error"]["code"] == "build_timeout"
    assert services.backend.list_resources() == []


@pytest.mark.parametrize("phase", ["queued", "building"])
def test_cancel_on_local_backend_leaves_nothing_running(api, driver, services, phase) -> None:
    body = submission("cancel-me", spec_md="# S\n<!-- foundry:sleep=30 -->")
    status, accepted, _ = api.call("POST", "/v1/jobs", body=body)
    job_id = accepted["job_id"]
    if phase == "building":
        driver.run_to_completion(
            job_id, until=lambda i: i.custom_status.get("phase") == "build_wait"
        )
        assert services.backend.list_resources()
    status, view, _ = api.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 200
    assert view["status"] == JobStatus.CANCELED.value
    assert view["error"]["code"] == "canceled"
    inst = driver.run_to_completion(job_id)
    assert inst.output["status"] == "canceled"
    assert services.backend.list_resources() == []
