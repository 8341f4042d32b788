"""The dev server's event loop never waits for an activity: with the pump running a slow one,
requests that touch no storage, a status query and a new submit all answer promptly. A
functional test of non-blocking (generous bounds), not a benchmark."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

import function_app
from activities import names
from devhost.binding import client_binding
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from devhost.loopback import LoopbackServer, free_port
from devhost.pump import Pump
from devhost.server import build_app
from tests.conftest import API_KEY, submission
from tests.scripted_backend import ScriptedBackend

SYSTEM_KEY = "dev-server-system-key-0123456789"
SLOW_SECS = 5.0  # longer than the four bounded requests below take together


@dataclass
class DevServer:
    driver: Driver
    http: httpx.Client


@pytest.fixture
def dev_server(services) -> Iterator[DevServer]:
    """What ``serve()`` assembles: real-clock driver, pump, functions, management API."""
    services.backend = ScriptedBackend(auto=True)
    driver = Driver(function_app.app, realtime=True)
    port = free_port()
    host = FunctionHost(function_app.app, client_binding(f"http://127.0.0.1:{port}", SYSTEM_KEY))
    pump = Pump(driver)
    pump.start()
    server = LoopbackServer(build_app(host, driver, system_key=SYSTEM_KEY), port=port).start()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            yield DevServer(driver, http)
    finally:
        server.stop()
        pump.stop()


def timed(call) -> tuple[float, httpx.Response]:
    began = time.monotonic()
    response = call()
    return time.monotonic() - began, response


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_requests_answer_while_an_activity_runs(dev_server: DevServer) -> None:
    http, driver = dev_server.http, dev_server.driver
    # Warm up (first imports, connections): only the steady state is measured below.
    assert http.get("/v1/healthz").status_code == 200
    warm = http.post("/v1/jobs", json=submission("warm-up", idempotency_key="w")).json()
    wait_for(lambda: http.get(f"/v1/jobs/{warm['job_id']}").json()["status"] == "ready", 60)
    slow_started = threading.Event()
    slow_job: dict[str, str] = {}

    def slow_start_build(name: str, payload: object, attempt: int) -> None:
        if name == names.START_BUILD and not slow_started.is_set():
            slow_job["id"] = payload["job_id"]  # the first build started from now on
            slow_started.set()
            time.sleep(SLOW_SECS)

    driver.activity_hook = slow_start_build
    accepted = http.post("/v1/jobs", json=submission("slow-one", idempotency_key="s"))
    assert accepted.status_code == 202
    assert slow_started.wait(20), "the slow activity never started"
    assert slow_job["id"] == accepted.json()["job_id"]

    healthz_secs, healthz = timed(lambda: http.get("/v1/healthz"))
    openapi_secs, openapi = timed(lambda: http.get("/v1/openapi.json"))
    status_secs, status = timed(
        lambda: http.get(
            f"/runtime/webhooks/durabletask/instances/{slow_job['id']}",
            headers={"x-functions-key": SYSTEM_KEY},
        )
    )
    submit_secs, submitted = timed(
        lambda: http.post("/v1/jobs", json=submission("during", idempotency_key="d"))
    )
    assert healthz.status_code == 200 and openapi.status_code == 200
    assert status.status_code == 202 and status.json()["runtimeStatus"] == "Running"
    assert submitted.status_code == 202
    assert healthz_secs < 0.5, healthz_secs
    assert openapi_secs < 0.5, openapi_secs
    assert status_secs < 0.5, status_secs
    # A submit starts an orchestration: it used to wait for the lock the activity held.
    assert submit_secs < 2.0, submit_secs
    assert slow_started.is_set() and driver.instances[slow_job["id"]].in_flight

    def all_ready() -> bool:
        jobs = [warm["job_id"], slow_job["id"], submitted.json()["job_id"]]
        return all(http.get(f"/v1/jobs/{j}").json()["status"] == "ready" for j in jobs)

    wait_for(all_ready, timeout=60)  # the pump carries every job through, on the real clock
