"""How the CLI presents keys to the app, and what it makes of refusals: against a loopback
stand-in for the Functions host that checks keys the way Azure does (the dev server, like
``func start``, checks none)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator

import pytest
from aiohttp import web

from admin import cli
from admin.app_client import AppClient
from admin.exits import CliError, Exit
from tests.dev_server import serving

MASTER_KEY = "test-master-key-0123456789"


@pytest.fixture
def keyed_host() -> Iterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def admin_function(request: web.Request) -> web.Response:
        seen.append(request)
        if request.headers.get("x-functions-key") != MASTER_KEY:
            return web.Response(status=401)
        if request.match_info["name"] != "maintenance":
            return web.Response(status=404)
        body = await request.json()
        return web.Response(status=202 if body == {"input": ""} else 400)

    async def durable_status(request: web.Request) -> web.Response:
        return web.Response(status=401)  # no durabletask_extension key

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "degraded"})

    app = web.Application()
    app.router.add_post("/admin/functions/{name}", admin_function)
    app.router.add_get("/runtime/webhooks/durabletask/instances/{id}", durable_status)
    app.router.add_get("/v1/healthz", healthz)
    with serving(app) as url:
        yield url, seen


def run(*argv: str, services=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), services=services, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_master_key_travels_in_the_header_only(keyed_host, monkeypatch) -> None:
    url, seen = keyed_host
    monkeypatch.setenv("FOUNDRY_ADMIN_MASTER_KEY", MASTER_KEY)
    code, out, err = run("--app-url", url, "reap")
    assert code == 0, err
    assert "queued a run of its maintenance timer" in out
    assert MASTER_KEY not in str(seen[0].url)
    assert seen[0].headers["content-type"] == "application/json"


def test_a_refused_master_key_exits_4_with_how_to_get_one(keyed_host, monkeypatch) -> None:
    url, _ = keyed_host
    monkeypatch.setenv("FOUNDRY_ADMIN_MASTER_KEY", "wrong")
    code, out, err = run("--app-url", url, "purge")
    assert code == Exit.AUTH and out == ""
    assert "FOUNDRY_ADMIN_MASTER_KEY" in err and "az functionapp keys list" in err
    assert "wrong" not in err
    monkeypatch.delenv("FOUNDRY_ADMIN_MASTER_KEY")
    assert run("--app-url", url, "purge")[0] == Exit.AUTH


def test_a_degraded_app_exits_5(keyed_host) -> None:
    url, _ = keyed_host
    code, out, _ = run("--app-url", url, "--json", "health")
    assert code == Exit.UNAVAILABLE and json.loads(out) == {"status": "degraded"}


def test_show_without_the_durable_key_still_shows_the_job(keyed_host, api, services) -> None:
    from tests.conftest import submission

    url, _ = keyed_host
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    code, out, err = run("--app-url", url, "show", accepted["job_id"], services=services)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("orchestration"))
    assert "unknown" in line and "HTTP 401" in line


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (web.json_response([1, 2]), {"value": [1, 2]}),
        (web.Response(text="<html>ok</html>", content_type="text/html"), None),
    ],
    ids=["json_array", "not_json"],
)
def test_a_successful_reply_is_a_json_object_or_a_bad_reply(reply, expected) -> None:
    """Any 2xx body the CLI reads is JSON: a non-object value is wrapped, anything else is
    ``bad_reply`` (exit 5) naming the request."""

    async def healthz(request: web.Request) -> web.Response:
        return reply

    app = web.Application()
    app.router.add_get("/v1/healthz", healthz)

    async def ask(url: str) -> dict:
        client = AppClient(url)
        try:
            return await client.health()
        finally:
            await client.aclose()

    with serving(app) as url:
        if expected is not None:
            assert asyncio.run(ask(url)) == expected
            return
        with pytest.raises(CliError) as refused:
            asyncio.run(ask(url))
    assert (refused.value.exit, refused.value.code) == (Exit.UNAVAILABLE, "bad_reply")
    assert refused.value.message == "GET /v1/healthz: the reply is not JSON"
