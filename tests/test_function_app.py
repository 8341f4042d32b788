"""The app as the real Python worker loads and runs it: its own indexing and validation over
``function_app.py`` (see tests/worker_runtime.py), the metadata the host then receives (names,
routes, methods, auth, durable client bindings, the timer schedule), and triggers that never
block the worker's event loop."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import function_app
from devhost.http_host import FunctionHost
from devhost.indexing import indexed_functions
from shared.config.settings import get_settings
from shared.services import use_services
from tests import worker_runtime
from tests.conftest import API_KEY, submission
from tests.slow_relay import SlowRelay

METADATA_FILE = worker_runtime.ROOT / ".cache" / "function-metadata.json"
EXPECTED_ROUTES = {
    "submit_job": ("v1/jobs", ["POST"]),
    "list_jobs": ("v1/jobs", ["GET"]),
    "get_job": ("v1/jobs/{job_id}", ["GET"]),
    "get_logs": ("v1/jobs/{job_id}/logs", ["GET"]),
    "get_artifact": ("v1/jobs/{job_id}/artifact", ["GET"]),
    "get_diagnostics": ("v1/jobs/{job_id}/diagnostics", ["GET"]),
    "cancel_job": ("v1/jobs/{job_id}/cancel", ["POST"]),
    "delete_preview": ("v1/jobs/{job_id}/preview", ["DELETE"]),
    "healthz": ("v1/healthz", ["GET"]),
    "openapi": ("v1/openapi.json", ["GET"]),
    "build_event": ("v1/jobs/{job_id}/build-events", ["POST"]),
}
ACTIVITIES = {
    "start_build",
    "check_build",
    "stop_build_for_timeout",
    "check_image",
    "check_preview",
    "finalize_ready",
    "fail_job",
    "compensate_cancel",
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = worker_runtime.run_indexing()
    METADATA_FILE.parent.mkdir(parents=True, exist_ok=True)
    METADATA_FILE.write_text(json.dumps(result, indent=2) + "\n")
    worker_runtime.SUMMARY[:] = [
        f"{result['runtime']}: {len(result['functions'])} functions accepted, "
        f"{len(result['rejected'])} rejected; full metadata in {METADATA_FILE}",
        *(f"REJECTED {name}: {error}" for name, error in result["rejected"].items()),
        *(
            f"{f['name']}: {json.dumps(f['raw_bindings'], separators=(',', ':'))}"
            for f in result["functions"]
        ),
    ]
    return result


@pytest.fixture(scope="module")
def functions(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Function name -> its bindings, as the JSON the host receives (``raw_bindings``)."""
    return {f["name"]: f["raw_bindings"] for f in report["functions"]}


def _binding(bindings: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(b for b in bindings if b["type"] == kind)


def test_the_real_worker_accepts_every_function(report) -> None:
    assert report["rejected"] == {}
    assert report["app_error"] is None
    assert [f["name"] for f in report["functions"]] == report["indexed"]
    # + run_job, maintenance and the catch-all route
    assert len(report["indexed"]) == len(EXPECTED_ROUTES) + len(ACTIVITIES) + 3
    for function in report["functions"]:
        assert function["script_file"] == "function_app.py"
        assert function["language"] == "python"
        assert function["properties"] == {"worker_indexed": "True"}


def test_the_worker_rejects_what_the_host_would_refuse(tmp_path: Path) -> None:
    """The check can fail: an activity annotated ``dict[str, Any]`` (what ours had) is refused,
    and with it the whole metadata response."""
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            from typing import Any

            import azure.durable_functions as df

            app = df.DFApp()

            @app.activity_trigger(input_name="payload")
            def bad(payload: dict[str, Any]) -> dict[str, Any]:
                return payload

            @app.activity_trigger(input_name="payload")
            def good(payload: dict) -> dict:
                return payload
            """
        )
    )
    report = worker_runtime.run_indexing(tmp_path)
    assert report["indexed"] == ["bad", "good"]
    assert report["rejected"] == {
        "bad": "cannot load the bad function: binding payload has invalid non-type annotation "
        "dict[str, typing.Any]"
    }
    assert report["app_error"] == report["rejected"]["bad"]
    assert report["functions"] == []


def test_every_http_route_is_registered_with_anonymous_host_auth(functions) -> None:
    for name, (route, methods) in EXPECTED_ROUTES.items():
        trigger = _binding(functions[name], "httpTrigger")
        assert trigger["route"] == route, name
        assert trigger["methods"] == methods, name
        # The service does its own bearer auth; host function keys would break the contract.
        assert trigger["authLevel"] == "ANONYMOUS", name
        assert _binding(functions[name], "http")["direction"] == "OUT", name


def test_routes_that_start_or_signal_orchestrations_get_a_durable_client(functions) -> None:
    for name in ("submit_job", "cancel_job", "build_event", "maintenance"):
        assert any(b["type"] == "durableClient" for b in functions[name]), name


def test_orchestrator_activities_and_timer_are_registered(functions) -> None:
    kinds = {name: {b["type"] for b in bindings} for name, bindings in functions.items()}
    assert kinds["run_job"] == {"orchestrationTrigger"}
    assert {n for n, k in kinds.items() if "activityTrigger" in k} == ACTIVITIES
    for name in ACTIVITIES:
        assert _binding(functions[name], "activityTrigger")["activity"] == name
    timer = _binding(functions["maintenance"], "timerTrigger")
    assert timer["schedule"] == "%FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE%"


def test_function_names_are_unique(report) -> None:
    names = [f["name"] for f in report["functions"]]
    assert len(names) == len(set(names)) == len(EXPECTED_ROUTES) + len(ACTIVITIES) + 3
    ids = [f["function_id"] for f in report["functions"]]
    assert len(ids) == len(set(ids))


def test_the_catch_all_route_takes_every_method_and_is_tried_last(functions) -> None:
    """The host refuses routes starting with admin/runtime, maps a trigger without methods to
    every method, and tries function routes in name order (OrdinalIgnoreCase)."""
    trigger = _binding(functions["zz_unmatched_route"], "httpTrigger")
    assert trigger["route"] == "{*path}" and not trigger.get("methods")
    assert trigger["authLevel"] == "ANONYMOUS"
    http_names = [
        name
        for name, bindings in functions.items()
        if any(b["type"] == "httpTrigger" for b in bindings)
    ]
    assert max(http_names, key=str.upper) == "zz_unmatched_route"
    for bindings in functions.values():
        for binding in bindings:
            route = (binding.get("route") or "").strip("/").lower()
            assert not route.startswith(("admin", "runtime")), route


#: Every ``async def`` trigger: the worker runs these on its event loop (sync ones go to its
#: thread pool), so none may block it. A new async trigger must be added here to be probed.
ASYNC_TRIGGERS = {"submit_job", "cancel_job", "build_event", "maintenance"}
STORAGE_DELAY_SECS = 0.25  # per request chunk: a storage call costs >= 0.25 s
#: A loop callback (one step of a task) running this long blocks the loop: any storage call made
#: on the loop costs at least ``STORAGE_DELAY_SECS``.
LOOP_STALL_LIMIT_SECS = 0.15


def test_the_async_triggers_are_the_probed_ones() -> None:
    found = {
        f.get_function_name()
        for f in indexed_functions(function_app.app)
        if inspect.iscoroutinefunction(f.get_user_function())
    }
    assert found == ASYNC_TRIGGERS


class _SlowCallbacks(logging.Handler):
    """The loop callbacks that ran longer than ``slow_callback_duration``, as asyncio's debug
    mode times each one (``Executing <Handle ...> took 0.3 seconds``).

    This is the direct measure of blocking: the time one callback keeps the loop. A heartbeat
    task would also count the time the loop thread waits for the GIL while another thread runs
    (a full garbage collection in a thread of a large test process took 0.34 s in CI), which is
    no call made on the loop."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Executing"):
            self.seen.append(record.getMessage())


async def _probed(run: Callable[[], Awaitable[Any]]) -> tuple[Any, list[str]]:
    """``run()``'s result and the loop callbacks that blocked the loop while it ran."""
    loop = asyncio.get_running_loop()
    assert loop.get_debug() and loop.slow_callback_duration == LOOP_STALL_LIMIT_SECS
    watcher = _SlowCallbacks()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(watcher)
    try:
        result = await run()
        # asyncio logs a slow callback once it has returned: end this step before looking.
        await asyncio.sleep(0)
        return result, watcher.seen
    finally:
        asyncio_log.removeHandler(watcher)


@pytest.fixture
def slow_storage_env(azurite, tmp_path, monkeypatch) -> Iterator[None]:
    """The app configured from its environment (as on a cold start) against slow storage."""
    relays = [
        SlowRelay(port, STORAGE_DELAY_SECS) for port in (azurite.blob_port, azurite.table_port)
    ]
    slow = replace(azurite, blob_port=relays[0].port, table_port=relays[1].port)
    suffix = uuid.uuid4().hex[:10]
    for name, value in {
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": slow.connection_string,
        "FOUNDRY_SERVICE_API_KEYS": API_KEY,
        "FOUNDRY_SERVICE_TABLE_PREFIX": f"t{suffix}",
        "FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER": f"jobs-{suffix}",
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": str(tmp_path / "work"),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        yield
    finally:
        use_services(None)
        get_settings.cache_clear()
        for relay in relays:
            relay.close()


def test_no_trigger_blocks_the_event_loop_while_storage_is_slow(
    slow_storage_env, durable_host
) -> None:
    host = FunctionHost(function_app.app, durable_host.binding)
    auth = {"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    blocked: dict[str, list[str]] = {}

    async def scenario() -> None:
        # Runs on the worker loop, where the host runs the functions: that is the loop probed.
        loop = asyncio.get_running_loop()
        assert loop is host.worker.loop
        loop.set_debug(True)  # debug mode times every callback and names the slow ones
        loop.slow_callback_duration = LOOP_STALL_LIMIT_SECS
        await asyncio.sleep(0)  # the loop checks debug before each callback: time from the next
        try:
            await prove_the_probe_sees_a_blocking_call()
            await probe_each_trigger()
        finally:
            loop.set_debug(False)

    async def prove_the_probe_sees_a_blocking_call() -> None:
        async def blocking_storage_call() -> None:
            time.sleep(STORAGE_DELAY_SECS)  # noqa: ASYNC251 - what a sync SDK call on the loop does

        _, seen = await _probed(blocking_storage_call)
        assert len(seen) == 1, seen

    async def probe_each_trigger() -> None:

        async def cold(name: str, run: Callable[[], Awaitable[Any]]) -> Any:
            use_services(None)  # each trigger starts cold: its first call builds the services
            result, blocked[name] = await _probed(run)
            return result

        body = json.dumps(submission("slow-storage")).encode()
        accepted = await cold(
            "submit_job", lambda: host.request("POST", "/v1/jobs", body=body, headers=auth)
        )
        assert accepted.status_code == 202, accepted.get_body()
        job_id = json.loads(accepted.get_body())["job_id"]
        canceled = await cold(
            "cancel_job", lambda: host.request("POST", f"/v1/jobs/{job_id}/cancel", headers=auth)
        )
        assert canceled.status_code == 200, canceled.get_body()
        notice = json.dumps({"event": "finished"}).encode()
        forged = {"Authorization": "Bearer fb_not-a-live-token"}
        refused = await cold(
            "build_event",
            lambda: host.request(
                "POST", f"/v1/jobs/{job_id}/build-events", body=notice, headers=forged
            ),
        )
        assert refused.status_code == 401, refused.get_body()  # after a (slow) token lookup
        await cold("maintenance", lambda: host.run_timer("maintenance"))

    host.worker.run(scenario())
    assert set(blocked) == ASYNC_TRIGGERS
    assert not any(blocked.values()), blocked


def test_the_llm_proxy_is_not_a_function(functions) -> None:
    """The proxy streams from its own ASGI service (docs/llm-proxy.md): a Functions route for it
    would buffer replies past the HTTP limit, and the FastAPI streaming extension would switch
    every other HTTP function of this app to a request type they do not take."""
    routes = {
        b.get("route")
        for bindings in functions.values()
        for b in bindings
        if b["type"] == "httpTrigger"
    }
    assert "v1/messages" not in routes
    assert all("azurefunctions.extensions" not in name for name in sys.modules)
