"""Storage clients are bounded (connect/read timeouts, few short retries). With the storage
endpoint frozen (its own Azurite under SIGSTOP: it accepts connections and never answers), every
route answers within 5 s (503 ``unavailable``; healthz 200 ``degraded``), the maintenance timer
gives up as fast, and a job that was building when storage froze completes once it resumes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import function_app
from devhost.http_host import FunctionHost
from shared.backends.base import StepState
from shared.config.settings import Settings
from shared.domain.models import JobStatus
from shared.errors import TransientBackendError
from shared.llm_proxy import LlmProxy, ProxySettings
from shared.services import Services, use_services
from shared.storage.clients import blob_limits, table_limits
from tests.azurite import Azurite, start_azurite
from tests.conftest import Api, make_settings, submission
from tests.local_builds import settle
from tests.proxy.harness import ServedProxy

ROUTE_BUDGET_SECS = 5.0


@dataclass
class Outage:
    """A private Azurite that can be frozen and resumed (the session one stays untouched)."""

    azurite: Azurite
    frozen: bool = False

    def freeze(self) -> None:
        os.killpg(self.azurite.process.pid, signal.SIGSTOP)
        self.frozen = True

    def resume(self) -> None:
        if self.frozen:
            os.killpg(self.azurite.process.pid, signal.SIGCONT)
            self.frozen = False


@pytest.fixture
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    controlled = Outage(start_azurite(tmp_path_factory.mktemp("azurite-outage")))
    try:
        yield controlled
    finally:
        controlled.resume()  # a stopped process would not act on SIGTERM
        controlled.azurite.stop()


def test_defaults_bound_every_storage_call() -> None:
    settings = Settings(storage_account="acct")
    tables, blobs = table_limits(settings), blob_limits(settings)
    for limits in (tables, blobs):
        assert limits["connection_timeout"] == 3.0
        assert limits["read_timeout"] == 3.0
    assert tables["retry_total"] == 2 and tables["retry_read"] == 0
    policy = blobs["retry_policy"]
    assert policy.total_retries == 2 and policy.read_retries == 0
    assert policy.get_backoff_time({}) < 1
    env = {
        "FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": "acct",
        "FOUNDRY_SERVICE_STORAGE_CONNECT_TIMEOUT_SECS": "1.5",
        "FOUNDRY_SERVICE_STORAGE_READ_TIMEOUT_SECS": "20",
        "FOUNDRY_SERVICE_STORAGE_RETRY_TOTAL": "0",
    }
    tuned = Settings.from_env(env)
    assert tuned.storage_connect_timeout_secs == 1.5
    assert tuned.storage_read_timeout_secs == 20.0
    assert tuned.storage_retry_total == 0


def _proxy_call(llm: ServedProxy, message: bytes, token: str) -> tuple[int, Any, Any]:
    """The LLM proxy (its own service) answers like a route: status, JSON, headers."""
    answer = httpx.post(
        f"{llm.url}/v1/messages",
        content=message,
        headers={"Authorization": f"Bearer {token}"},
        timeout=ROUTE_BUDGET_SECS * 2,
    )
    return answer.status_code, answer.json(), answer.headers


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - recorded and asserted on by the caller
        result = exc
    return time.monotonic() - started, result


@pytest.mark.azurite
def test_frozen_storage_fails_fast_and_a_running_job_survives(
    outage, tmp_path, driver, durable_host
):
    settings = make_settings(outage.azurite, tmp_path)  # the default storage limits
    svc = Services.build(settings)
    use_services(svc)
    api = Api(FunctionHost(function_app.app, durable_host.binding))
    dead_upstream = ProxySettings(upstream_url="http://127.0.0.1:9", api_key="sk-test")
    llm = ServedProxy(lambda: LlmProxy(svc.tokens, svc.jobs, dead_upstream))
    try:
        body = submission("outage", spec_md="# Outage\n\n<!-- foundry:sleep=3 -->\n")
        status, accepted, _ = api.call("POST", "/v1/jobs", body=body)
        assert status == 202, accepted
        job_id = accepted["job_id"]
        driver.run_until_idle()  # slot claimed, build started, first poll done, timer pending
        assert svc.jobs.get_job(job_id).status is JobStatus.BUILDING
        token = svc.tokens.mint(job_id, expires_at=datetime.now(UTC) + timedelta(hours=1))
        assert svc.backend.poll_build(job_id).state is StepState.RUNNING  # the builder runs on

        outage.freeze()
        job = f"/v1/jobs/{job_id}"
        message = b'{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}'
        calls: dict[str, Callable[[], Any]] = {
            "POST /v1/jobs": lambda: api.call("POST", "/v1/jobs", body=submission("other")),
            "GET /v1/jobs": lambda: api.call("GET", "/v1/jobs"),
            "GET job": lambda: api.call("GET", job),
            "GET logs": lambda: api.call("GET", f"{job}/logs"),
            "GET logs cursor": lambda: api.call("GET", f"{job}/logs?cursor=0"),
            "GET artifact": lambda: api.call("GET", f"{job}/artifact"),
            "POST cancel": lambda: api.call("POST", f"{job}/cancel"),
            "DELETE preview": lambda: api.call("DELETE", f"{job}/preview"),
            "GET healthz": lambda: api.call("GET", "/v1/healthz", key=None),
            "GET openapi": lambda: api.call("GET", "/v1/openapi.json", key=None),
            "POST messages": lambda: _proxy_call(llm, message, token),
        }
        with ThreadPoolExecutor(len(calls)) as pool:
            futures = {name: pool.submit(_timed, call) for name, call in calls.items()}
            results = {name: future.result() for name, future in futures.items()}
        slow = {name: round(secs, 2) for name, (secs, _) in results.items()}
        print("route seconds with storage frozen:", slow, results["POST messages"][1])
        assert all(secs < ROUTE_BUDGET_SECS for secs, _ in results.values()), slow

        for name in calls:
            _, result = results[name]
            status, reply, headers = result
            if name == "GET openapi":
                assert status == 200
            elif name == "GET healthz":
                assert status == 200
                assert reply["status"] == "degraded"
                assert reply["reasons"] == ["storage is unavailable"]
                assert reply["workers"] == settings.max_concurrent_builds
            else:
                assert (status, reply["error"]) == (503, "unavailable"), (name, reply)
                assert headers["Retry-After"] == "5"

        secs, failure = _timed(lambda: asyncio.run(api.host.run_timer("maintenance")))
        assert secs < ROUTE_BUDGET_SECS and isinstance(failure, TransientBackendError)

        # The orchestration's next poll runs while storage is frozen: a transient failure that
        # Durable retries, not a failed job.
        calls_before = len(driver.instances[job_id].activity_calls)
        assert driver.jump_to_next_timer()
        secs, _ = _timed(driver.run_until_idle)
        assert secs < ROUTE_BUDGET_SECS
        new_calls = driver.instances[job_id].activity_calls[calls_before:]
        assert [(name, attempt) for name, _, attempt in new_calls] == [("check_build", 1)]
        assert driver.instances[job_id].is_running

        outage.resume()
        # The build runner (a real process) was frozen out of storage too: each jump of the
        # virtual clock waits for it to finish rather than racing it to the deadline.
        inst = driver.run_to_completion(
            job_id, limit=timedelta(hours=3), between_timers=settle(svc, job_id)
        )
        assert inst.status == "Completed", inst.error
        final = svc.jobs.get_job(job_id)
        assert final.status is JobStatus.READY, final.error_message  # the frozen cancel lost
        retried = [a for n, _, a in inst.activity_calls if n == "check_build" and a > 1]
        assert retried, "the poll that failed during the outage was retried"
    finally:
        outage.resume()
        llm.close()
        use_services(None)
        for ref in svc.backend.list_resources():
            svc.backend.teardown(ref.job_id)
