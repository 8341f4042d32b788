"""The dev server's stand-in for the Functions host's ``POST /admin/functions/<name>``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

import function_app
from devhost.client import InProcessDurableClient
from devhost.http_host import FunctionHost
from devhost.server import build_app
from tests.dev_server import serving


@pytest.fixture
def host(services, driver) -> FunctionHost:
    return FunctionHost(function_app.app, InProcessDurableClient(driver, drive=False))


@pytest.fixture
def url(host: FunctionHost) -> Iterator[str]:
    with serving(build_app(host, host.client)) as base:
        yield base


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
