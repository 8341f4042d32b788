"""The dev server's stand-in for the Functions host's ``POST /admin/functions/<name>``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

import function_app
from devhost.binding import client_binding
from devhost.http_host import FunctionHost
from devhost.loopback import LoopbackServer, free_port
from devhost.server import build_app

SYSTEM_KEY = "admin-api-test-system-key"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def host(services, port) -> FunctionHost:
    return FunctionHost(function_app.app, client_binding(f"http://127.0.0.1:{port}", SYSTEM_KEY))


@pytest.fixture
def url(host: FunctionHost, driver, port) -> Iterator[str]:
    with LoopbackServer(build_app(host, driver, system_key=SYSTEM_KEY), port=port) as server:
        yield server.base_url


def test_runs_a_timer_in_the_background_and_answers_202(host, url, monkeypatch) -> None:
    ran = threading.Event()
    call, client_param = host.timers["maintenance"]

    async def recorded(**kwargs):
        ran.set()
        return await call(**kwargs)

    monkeypatch.setitem(host.timers, "maintenance", (recorded, client_param))
    resp = httpx.post(f"{url}/admin/functions/Maintenance", json={"input": ""})  # any case
    assert resp.status_code == 202
    assert ran.wait(10)


def test_refuses_what_the_host_refuses(url) -> None:
    assert httpx.post(f"{url}/admin/functions/maintenance").status_code == 400  # no body
    assert httpx.post(f"{url}/admin/functions/maintenance", json=[]).status_code == 400
    assert httpx.post(f"{url}/admin/functions/nope", json={"input": ""}).status_code == 404
    # the dev server runs only timers this way (HTTP functions have their routes)
    assert httpx.post(f"{url}/admin/functions/healthz", json={"input": ""}).status_code == 404
