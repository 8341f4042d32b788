"""Shared fixtures: one Azurite per test session, isolated tables/containers per test, and the
app's functions driven by the in-process durable driver. Functions get the SDK's real durable
client, which calls the dev host's management API (over the test's driver) on loopback, with
the system key, exactly as in the dev server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions import DurableOrchestrationClient

import function_app
from devhost.binding import durable_client
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from devhost.loopback import DurableHttpHost
from shared.config.settings import Settings
from shared.services import Services, use_services
from tests.azurite import Azurite, start_azurite
from tests.storage_meter import StorageMeter, metered_services

#: Fixtures of the LLM proxy in front of a fake upstream (``upstream``, ``llm``, ``proxy``,
#: ``job_token``), shared by the proxy tests in every folder.
pytest_plugins = ("tests.fake_llm_upstream",)

API_KEY = "test-admin-key-0123456789"
READ_KEY = "test-read-key-0123456789"
ALICE_KEY = "test-alice-key-0123456789"
API_KEYS = f"{API_KEY},{READ_KEY}|scopes=jobs:read,{ALICE_KEY}|owner=alice|org=acme"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the session Azurite (directly or through another fixture),
    so ``pytest -m "not azurite"`` is the fast inner loop that starts no emulator."""
    for item in items:
        if "azurite" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.azurite)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    emulator = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield emulator
    finally:
        emulator.stop()


def make_settings(azurite: Azurite, tmp_path: Path, **overrides: Any) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    base: dict[str, Any] = {
        "api_keys": API_KEYS,
        "build_backend": "local",
        "storage_connection_string": azurite.connection_string,
        "storage_container": f"jobs-{suffix}",
        "table_prefix": f"t{suffix}",
        "local_work_dir": str(tmp_path / "work"),
        "build_timeout_secs": 600,
        # The driver's clock is virtual: check builds on a backoff (the push path has its own
        # tests) and never sleep inside a check activity.
        "build_check_secs": 10,
        "check_wait_secs": 0,
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(azurite: Azurite, tmp_path: Path) -> Settings:
    return make_settings(azurite, tmp_path)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = Services.build(settings)
    use_services(svc)
    try:
        yield svc
    finally:
        use_services(None)
        for ref in svc.backend.list_resources():
            svc.backend.teardown(ref.job_id)


@pytest.fixture
def metered(settings: Settings) -> Iterator[tuple[Services, StorageMeter]]:
    """Services whose storage calls a fresh meter counts (``tests.storage_meter``)."""
    svc, meter = metered_services(settings)
    try:
        yield svc, meter
    finally:
        use_services(None)


@pytest.fixture(params=[0, 2], ids=["schemaV1", "schemaV3"])
def schema(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def driver() -> Driver:
    return Driver(function_app.app)


@dataclass
class Api:
    """Calls the app's HTTP functions as the host would, and decodes JSON replies."""

    host: FunctionHost

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        key: str | None = API_KEY,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = asyncio.run(self.host.request(method, path, body=data, headers=sent))
        text = response.get_body().decode()
        mimetype = response.mimetype or ""
        parsed = json.loads(text) if mimetype == "application/json" and text else text
        sent_headers = dict(response.headers)
        if text:  # what the host puts on the wire
            sent_headers["Content-Type"] = f"{mimetype}; charset={response.charset}"
        return response.status_code, parsed, sent_headers


@pytest.fixture
def durable_host(driver: Driver) -> Iterator[DurableHttpHost]:
    """The durable management API over ``driver`` on a loopback port (key-guarded)."""
    with DurableHttpHost(driver) as host:
        yield host


@pytest.fixture
def client(durable_host: DurableHttpHost) -> DurableOrchestrationClient:
    """The SDK's client, as a function would receive it (run its calls with
    ``devhost.worker.run_in_worker``, where function code runs)."""
    return durable_client(durable_host.binding)


@pytest.fixture
def api(services: Services, durable_host: DurableHttpHost) -> Api:
    return Api(FunctionHost(function_app.app, durable_host.binding))


def submission(app_name: str = "wishful-stickers", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_name": app_name,
        "org_slug": "acme",
        "owner": "alice",
        "idempotency_key": f"key-{app_name}",
        "spec_md": f"# {app_name}\n\nA tiny app.\n",
        "tasks_md": "- [ ] T1: Build the page\n- [ ] T2: Style it\n",
    }
    body.update(overrides)
    return body


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show the function metadata the real worker reports to the host (tests/test_function_app.py
    fills it), so every run's output records what the host would index."""
    from tests.worker_runtime import SUMMARY

    if SUMMARY:
        terminalreporter.write_sep("-", "function metadata for the host (real worker indexing)")
        for line in SUMMARY:
            terminalreporter.write_line(line)
