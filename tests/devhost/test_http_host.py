"""The dev host routes and limits requests the way the Functions host does, and every refusal is
the JSON envelope: through ``FunctionHost`` directly and through the aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
import pytest

import function_app
from api.routing import CATCH_ALL_FUNCTION
from devhost.binding import client_binding
from devhost.http_host import DEFAULT_MAX_BODY_BYTES, FunctionHost, host_max_body_bytes
from devhost.ports import free_port
from tests.loopback import loopback_server

#: A binding value whose management API nobody serves: these tests never reach a durable client.
UNREACHABLE = client_binding(f"http://127.0.0.1:{free_port()}", "unused-key")


def call(host: FunctionHost, method: str, url: str, body: bytes = b"") -> tuple[int, Any, dict]:
    response = asyncio.run(host.request(method, url, body=body))
    raw = response.get_body()
    parsed = json.loads(raw) if response.mimetype == "application/json" else raw
    return response.status_code, parsed, dict(response.headers)


def assert_envelope(body: Any, code: str) -> None:
    assert isinstance(body, dict), body
    assert body["schema_version"] == 1 and body["error"] == code and body["message"], body


@pytest.fixture
def host() -> FunctionHost:
    return FunctionHost(function_app.app, UNREACHABLE)


def test_routes_are_tried_in_the_hosts_order_with_the_catch_all_last(host) -> None:
    names = [route.name for route in host.routes]
    assert names == sorted(names, key=str.upper)
    assert names[-1] == CATCH_ALL_FUNCTION


@pytest.mark.parametrize(
    "path",
    # /v1/messages too: the LLM proxy is its own service (docs/llm-proxy.md), not a function.
    ["/", "/nothing", "/v1", "/v1/jobs/x/y/z", "/api/v1/jobs", "/v1/messages"],
)
def test_an_unknown_path_is_a_json_404_from_the_apps_catch_all(host, path: str) -> None:
    status, body, _ = call(host, "GET", path)
    assert status == 404
    assert_envelope(body, "not_found")
    assert body["message"] == "no such route"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/jobs", "GET, POST"),
        ("DELETE", "/v1/jobs/fj_01JZ8Q4T6W3M9V2K7H5N1R0C8D", "GET"),
        ("GET", "/v1/jobs/anything/cancel", "POST"),
        ("POST", "/v1/jobs/anything/preview", "DELETE"),
        ("GET", "/v1/jobs/anything/build-events", "POST"),
        ("PATCH", "/v1/jobs/x/diagnostics", "GET"),
        ("HEAD", "/v1/healthz", "GET"),
    ],
)
def test_a_known_path_with_another_method_is_a_json_405_with_allow(
    host, method: str, path: str, allow: str
) -> None:
    status, body, headers = call(host, method, path)
    assert status == 405
    assert_envelope(body, "method_not_allowed")
    assert headers["Allow"] == allow


def test_literal_segments_match_ignoring_case_as_aspnet_routing_does(host) -> None:
    status, body, headers = call(host, "PUT", "/V1/Jobs/")
    assert (status, headers.get("Allow")) == (405, "GET, POST"), body
    status, _, _ = call(host, "GET", "/V1/OPENAPI.JSON")
    assert status == 200


def test_route_values_arrive_decoded(host) -> None:
    status, body, headers = call(host, "POST", "/v1/jobs/%66j_x/preview")
    assert status == 405 and headers["Allow"] == "DELETE", body
    route, params = host.match("GET", "/v1/jobs/fj%5F1")
    assert route.name == "get_job" and params == {"job_id": "fj_1"}


def test_a_url_over_8000_bytes_is_a_json_414(host) -> None:
    prefix = "/v1/openapi.json?pad="
    ok, _, _ = call(host, "GET", prefix + "x" * (8000 - len(prefix)))
    assert ok == 200
    status, body, _ = call(host, "GET", prefix + "x" * (8001 - len(prefix)))
    assert status == 414
    assert_envelope(body, "uri_too_long")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/healthz"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/nope")],
)
def test_the_app_refuses_long_urls_itself_where_the_host_lets_them_through(method, path) -> None:
    """Should a host pass a longer URL (another plan, a raised limit), the app answers 414."""
    lenient = FunctionHost(function_app.app, UNREACHABLE, max_url_bytes=64 * 1024)
    status, body, _ = call(lenient, method, path + "?pad=" + "x" * 8001)
    assert status == 414
    assert_envelope(body, "uri_too_long")


def test_a_body_over_the_host_limit_is_a_json_413() -> None:
    small = FunctionHost(function_app.app, UNREACHABLE, max_body_bytes=1000)
    status, body, _ = call(small, "POST", "/v1/messages", body=b"x" * 1001)
    assert status == 413
    assert_envelope(body, "payload_too_large")


def test_the_body_limit_is_the_hosts_and_follows_its_app_setting() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 104_857_600  # ScriptConstants.DefaultMaxRequestBodySize
    assert host_max_body_bytes({}) == DEFAULT_MAX_BODY_BYTES
    assert host_max_body_bytes({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "2048"}) == 2048
    assert host_max_body_bytes({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "²"}) == DEFAULT_MAX_BODY_BYTES


def test_without_a_catch_all_the_dev_host_still_answers_json_404_and_405() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="only/{thing}", methods=["GET"])
    def only(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    bare = FunctionHost(app, None)
    status, body, headers = call(bare, "POST", "/only/1")
    assert status == 405 and headers["Allow"] == "GET"
    assert_envelope(body, "method_not_allowed")
    status, body, _ = call(bare, "GET", "/other")
    assert status == 404
    assert_envelope(body, "not_found")
    assert call(bare, "GET", "/ONLY/1")[0] == 200


def wire(base: str, method: str, target: str, body: bytes = b"") -> tuple[int, dict, Any]:
    """One raw HTTP/1.1 exchange (no client-side URL or size checks in the way)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, target, body=body or None)
        reply = conn.getresponse()
        data = reply.read()
        headers = {k.lower(): v for k, v in reply.getheaders()}
    finally:
        conn.close()
    parsed = (
        json.loads(data) if headers.get("content-type", "").startswith("application/json") else data
    )
    return reply.status, headers, parsed


def test_the_dev_server_on_loopback_answers_every_refusal_with_the_envelope() -> None:
    host = FunctionHost(function_app.app, UNREACHABLE, max_body_bytes=64 * 1024)
    with loopback_server(host) as base:
        status, headers, body = wire(base, "GET", "/no/such/route")
        assert status == 404 and headers["content-type"].startswith("application/json")
        assert_envelope(body, "not_found")
        status, headers, body = wire(base, "PUT", "/v1/jobs")
        assert (status, headers["allow"]) == (405, "GET, POST")
        assert_envelope(body, "method_not_allowed")
        status, _, body = wire(base, "GET", "/v1/healthz?pad=" + "x" * 8001)
        assert status == 414
        assert_envelope(body, "uri_too_long")
        status, _, body = wire(base, "POST", "/v1/messages", body=b"x" * (64 * 1024 + 1))
        assert status == 413
        assert_envelope(body, "payload_too_large")
        status, _, body = wire(base, "GET", "/v1/openapi.json")
        assert status == 200 and body["openapi"].startswith("3.1")
