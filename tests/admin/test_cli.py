"""The operator CLI, against Azurite and orchestrations reached over the Durable HTTP API served
by the dev server (aiohttp on loopback)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

import function_app
from admin import cli
from admin.webhook_client import WebhookDurableClient
from devhost.client import InProcessDurableClient
from devhost.http_host import FunctionHost
from devhost.server import build_app
from shared.domain.models import JobStatus
from tests.conftest import Api, submission
from tests.scripted_backend import ScriptedBackend


@pytest.fixture
def dev_server(driver) -> Iterator[str]:
    """The dev server's aiohttp app (function routes + Durable webhooks) on a loopback port."""
    client = InProcessDurableClient(driver, drive=False)
    app = build_app(FunctionHost(function_app.app, client), client)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def run_cli(services, *argv: str, client=None) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), services=services, client=client, out=out)
    return code, out.getvalue()


def webhook(url: str) -> WebhookDurableClient:
    return WebhookDurableClient(url)


def test_list_show_logs(api: Api, driver, services, dev_server) -> None:
    services.backend = ScriptedBackend()
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id)
    code, text = run_cli(services, "list")
    assert code == 0
    assert job_id in text and "ready" in text
    code, text = run_cli(services, "show", job_id, client=webhook(dev_server))
    report = json.loads(text)
    assert report["job"]["status"] == "ready"
    assert [h["to_status"] for h in report["history"]][-1] == "ready"
    assert report["orchestration"]["runtime_status"] == "Completed"
    code, text = run_cli(services, "logs", job_id, "--tail", "1")
    assert json.loads(text)["schema_version"] == 3
    code, text = run_cli(services, "logs", job_id, "--tail", "1", "--follow")  # job has ended
    assert json.loads(text)["schema_version"] == 3
    assert run_cli(services, "show", "fj_01JNOPENOPENOPENOPENOPENOP")[0] == 2


def test_cancel_signals_the_orchestration_over_http(api, driver, services, dev_server) -> None:
    backend = ScriptedBackend(auto=False)
    services.backend = backend
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    code, text = run_cli(services, "cancel", job_id, client=webhook(dev_server))
    assert code == 0, text
    inst = driver.run_to_completion(job_id)
    assert inst.output["status"] == "canceled"
    assert backend.resources == {}
    assert services.jobs.get_job(job_id).status is JobStatus.CANCELED
    assert run_cli(services, "cancel", job_id)[0] == 1  # already terminal


def test_reap_and_purge_need_the_app_url(services) -> None:
    code, text = run_cli(services, "reap")
    assert code == 2 and "--app-url" in text


def test_reap_runs_one_maintenance_pass(services, dev_server) -> None:
    code, text = run_cli(services, "reap", client=webhook(dev_server))
    assert code == 0
    assert json.loads(text)["expired"] == []
