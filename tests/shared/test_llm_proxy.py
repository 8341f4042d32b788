"""The per-job LLM proxy against a fake Anthropic upstream on loopback."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from api.llm_proxy import use_proxy
from shared.domain.models import JobStatus
from shared.llm_proxy import LlmProxy, ProxySettings
from shared.pipeline import lifecycle
from tests.conftest import submission

REAL_KEY = "sk-ant-REAL-CREDENTIAL-DO-NOT-LEAK-0123456789"
MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "hi"}],
}


class Upstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: tuple[int, dict[str, str], bytes] = (
            200,
            {"content-type": "application/json"},
            json.dumps(
                {"id": "msg_1", "usage": {"input_tokens": 100, "output_tokens": 50}}
            ).encode(),
        )
        self.delay = 0.0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                time.sleep(upstream.delay)
                status, headers, data = upstream.reply
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("x-upstream-secret-header", "should-not-pass")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy(services, upstream) -> Iterator[LlmProxy]:
    settings = ProxySettings(
        upstream_url=upstream.url, api_key=REAL_KEY, max_output_tokens=8192, max_concurrent=2
    )
    instance = LlmProxy(services, settings)
    use_proxy(instance)
    yield instance
    use_proxy(None)
    instance.http.close()


@pytest.fixture
def job_token(api, services) -> tuple[str, str]:
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    token = services.tokens.mint(job_id, expires_at=datetime.now(UTC) + timedelta(hours=1))
    return job_id, token


def call(api, token: str | None, body: Any = MESSAGE, headers: dict[str, str] | None = None):
    sent = {"anthropic-version": "2023-06-01", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.call("POST", "/v1/messages", raw=raw, key=None, headers=sent)


def test_forwards_with_the_real_credential_and_records_usage(
    api, services, proxy, upstream, job_token, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    job_id, token = job_token
    status, body, headers = call(api, token, headers={"anthropic-beta": "a,b,a"})
    assert status == 200, body
    assert body["id"] == "msg_1"
    (sent,) = upstream.requests
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == REAL_KEY
    assert token not in json.dumps(sent["headers"])
    assert sent["headers"]["anthropic-beta"] == "a,b"
    assert "x-upstream-secret-header" not in {k.lower() for k in headers}
    usage = services.jobs.get_job(job_id).detail["proxy_usage"]
    assert usage == {
        "requests": 1,
        "input_tokens": 100,
        "output_tokens": 50,
        "cost_usd": round((100 * 3 + 50 * 15) / 1e6, 6),
    }
    # The real credential is nowhere but the upstream request.
    assert REAL_KEY not in json.dumps(body) and REAL_KEY not in caplog.text
    for table in (services.jobs.jobs, services.jobs.history, services.tokens.table):
        assert REAL_KEY not in str([dict(e) for e in table.list_entities()])


@pytest.mark.parametrize(
    "case", ["unknown", "no_bearer", "x_api_key", "revoked", "expired", "finished_job"]
)
def test_only_live_tokens_of_in_flight_jobs_pass(
    api, services, proxy, upstream, job_token, case
) -> None:
    job_id, token = job_token
    headers: dict[str, str] = {}
    if case == "unknown":
        token = "fb_01JUNKNOWNUNKNOWNUNKNOWNUN"
    elif case == "no_bearer":
        token = None
    elif case == "x_api_key":
        headers["x-api-key"], token = token, None
    elif case == "revoked":
        services.tokens.revoke_job(job_id)
    elif case == "expired":
        token = services.tokens.mint(job_id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    elif case == "finished_job":
        lifecycle.cancel_job(services, job_id)
        assert services.jobs.get_job(job_id).status is JobStatus.CANCELED
    status, body, _ = call(api, token, headers=headers)
    assert status == 401
    assert body["error"] == "unauthorized"
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({**MESSAGE, "model": "gpt-4o"}, 403, "model_not_allowed"),
        ({**MESSAGE, "max_tokens": 9000}, 400, "output_tokens_too_high"),
        ({k: v for k, v in MESSAGE.items() if k != "max_tokens"}, 400, "output_tokens_too_high"),
        (b"{not json", 400, "invalid_request"),
        (b"[]", 400, "invalid_request"),
        ({**MESSAGE, "pad": "x" * (4 * 1024 * 1024)}, 413, "body_too_large"),
    ],
)
def test_request_limits(api, proxy, upstream, job_token, body, status, reason) -> None:
    got, reply, _ = call(api, job_token[1], body=body)
    assert (got, reply["error"]) == (status, reason)
    assert upstream.requests == []


def test_upstream_429_pauses_dispatch_for_retry_after(api, proxy, upstream, job_token) -> None:
    upstream.reply = (
        429,
        {"content-type": "application/json", "retry-after": "7"},
        b'{"type":"error","error":{"type":"rate_limit_error"}}',
    )
    status, _, headers = call(api, job_token[1])
    assert status == 429
    assert headers["retry-after"] == "7"
    status, body, headers = call(api, job_token[1])
    assert (status, body["error"]) == (429, "rate_limited")
    assert 1 <= int(headers["retry-after"]) <= 7
    assert len(upstream.requests) == 1  # the paused request never reached upstream


def test_streaming_replies_pass_through_and_count_usage(
    api, services, proxy, upstream, job_token
) -> None:
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 20, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"text": "hel"}},
        {"type": "message_delta", "usage": {"output_tokens": 30}},
    ]
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    upstream.reply = (200, {"content-type": "text/event-stream"}, sse)
    status, body, headers = call(api, job_token[1], body={**MESSAGE, "stream": True})
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert body == sse.decode()
    usage = services.jobs.get_job(job_token[0]).detail["proxy_usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (20, 30)


def test_per_token_concurrency_limit(api, proxy, upstream, job_token) -> None:
    upstream.delay = 0.5
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(call(api, job_token[1])[0]))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 429]


def test_unreachable_upstream_is_a_502_without_details(api, proxy, upstream, job_token) -> None:
    upstream.close()
    status, body, _ = call(api, job_token[1])
    assert (status, body["error"]) == (502, "upstream_error")
    assert REAL_KEY not in json.dumps(body)


def test_tokens_are_revoked_when_jobs_end(api, driver, services, job_token) -> None:
    from tests.scripted_backend import ScriptedBackend

    services.backend = ScriptedBackend()
    job_id, token = job_token
    assert services.tokens.verify(token) is not None
    driver.run_to_completion(job_id)
    assert services.jobs.get_job(job_id).status is JobStatus.READY
    assert services.tokens.verify(token) is None
