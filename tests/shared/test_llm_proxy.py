"""The per-job LLM proxy's limits and accounting: the deployed ASGI app on uvicorn, in front of a
fake Anthropic upstream on loopback (streaming behaviour is in tests/proxy/test_app.py)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.domain.models import JobStatus
from shared.llm_proxy import LlmProxy, ProxySettings, UsageMeter
from shared.pipeline import lifecycle
from tests.fake_llm_upstream import REAL_KEY
from tests.proxy.harness import FakeAnthropic, ServedProxy, message_events, sse

MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "hi"}],
}


def call(
    proxy: ServedProxy,
    token: str | None,
    body: Any = MESSAGE,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, httpx.Headers]:
    sent = {"anthropic-version": "2023-06-01", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = httpx.post(f"{proxy.url}/v1/messages", content=raw, headers=sent, timeout=30)
    kind = reply.headers.get("content-type", "")
    parsed = reply.json() if kind.startswith("application/json") else reply.text
    return reply.status_code, parsed, reply.headers


def test_forwards_with_the_real_credential_and_records_usage(
    services, proxy, upstream, job_token, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    job_id, token = job_token
    status, body, headers = call(proxy, token, headers={"anthropic-beta": "a,b,a"})
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
    services, proxy, upstream, job_token, case
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
    status, body, _ = call(proxy, token, headers=headers)
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
def test_request_limits(proxy, upstream, job_token, body, status, reason) -> None:
    got, reply, _ = call(proxy, job_token[1], body=body)
    assert (got, reply["error"]) == (status, reason)
    assert upstream.requests == []


def test_an_oversize_body_without_a_live_token_is_still_a_401(proxy, upstream) -> None:
    """The token is checked first, as before: size limits tell strangers nothing."""
    status, reply, _ = call(proxy, "fb_01JUNKNOWNUNKNOWNUNKNOWNUN", body=b"x" * (5 * 1024 * 1024))
    assert (status, reply["error"]) == (401, "unauthorized")
    assert upstream.requests == []


def rate_limited(upstream: FakeAnthropic, *, retry_after: str) -> None:
    upstream.status = 429
    upstream.headers = {"content-type": "application/json", "retry-after": retry_after}
    upstream.body = b'{"type":"error","error":{"type":"rate_limit_error"}}'


def test_upstream_429_pauses_dispatch_for_retry_after(proxy, upstream, job_token) -> None:
    rate_limited(upstream, retry_after="7")
    status, _, headers = call(proxy, job_token[1])
    assert status == 429
    assert headers["retry-after"] == "7"
    status, body, headers = call(proxy, job_token[1])
    assert (status, body["error"]) == (429, "rate_limited")
    assert 1 <= int(headers["retry-after"]) <= 7
    assert len(upstream.requests) == 1  # the paused request never reached upstream


def test_the_pause_lifts_when_retry_after_has_passed(services, proxy, upstream, job_token) -> None:
    rate_limited(upstream, retry_after="1")
    assert call(proxy, job_token[1])[0] == 429
    assert call(proxy, job_token[1])[1]["error"] == "rate_limited"
    upstream.status, upstream.headers = 200, {"content-type": "application/json"}
    upstream.body = json.dumps({"id": "m", "usage": {"input_tokens": 1}}).encode()
    time.sleep(1.1)
    assert call(proxy, job_token[1])[0] == 200
    assert len(upstream.requests) == 2
    # Refusals and upstream errors are not usage; only the one success counts.
    assert services.jobs.get_job(job_token[0]).detail["proxy_usage"]["requests"] == 1


def test_streaming_replies_pass_through_and_count_usage(
    services, proxy, upstream, job_token
) -> None:
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 20, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"text": "hel"}},
        {"type": "message_delta", "usage": {"output_tokens": 30}},
    ]
    sent = upstream.stream_events(events, interval=0)
    status, body, headers = call(proxy, job_token[1], body={**MESSAGE, "stream": True})
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert body == sent.decode()
    usage = services.jobs.get_job(job_token[0]).detail["proxy_usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (20, 30)


def test_per_token_concurrency_limit(proxy, upstream, job_token) -> None:
    upstream.delay = 0.5
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(call(proxy, job_token[1])[0]))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 429]


def test_unreachable_upstream_is_a_502_without_details(proxy, upstream, job_token) -> None:
    upstream.close()
    status, body, _ = call(proxy, job_token[1])
    assert (status, body["error"]) == (502, "upstream_error")
    assert REAL_KEY not in json.dumps(body)


def test_missing_credential_is_a_503_after_the_token_check(services, upstream, job_token) -> None:
    settings = ProxySettings(upstream_url=upstream.url, api_key="")
    served = ServedProxy(lambda: LlmProxy(services.tokens, services.jobs, settings))
    try:
        assert call(served, None)[0] == 401
        status, body, _ = call(served, job_token[1])
        assert (status, body["error"]) == (503, "proxy_unconfigured")
        health = httpx.get(f"{served.url}/healthz").json()
        assert health == {"status": "degraded", "in_flight": 0, "reason": "llm_credential_missing"}
    finally:
        served.close()
    assert upstream.requests == []


def test_tokens_are_revoked_when_jobs_end(api, driver, services, job_token) -> None:
    from tests.scripted_backend import ScriptedBackend

    services.backend = ScriptedBackend()
    job_id, token = job_token
    assert services.tokens.verify(token) is not None
    driver.run_to_completion(job_id)
    assert services.jobs.get_job(job_id).status is JobStatus.READY
    assert services.tokens.verify(token) is None


# ---- usage read from the events as they pass -------------------------------------------------


def test_usage_is_the_same_wherever_the_chunks_split() -> None:
    stream = sse(message_events(input_tokens=1234, output_tokens=567, text_deltas=5))
    stream = stream.replace(b"\n", b"\r\n", 3)  # CRLF line ends are SSE too
    whole = UsageMeter("text/event-stream")
    whole.feed(stream)
    assert whole.totals() == (1234, 567)
    for size in (1, 2, 7, 64):
        meter = UsageMeter("text/event-stream; charset=utf-8")
        for i in range(0, len(stream), size):
            meter.feed(stream[i : i + size])
        assert meter.totals() == (1234, 567), size


def test_usage_counts_are_cumulative_not_summed() -> None:
    """Anthropic's message_delta repeats the cumulative counts (newer API versions include the
    input count too); adding them up would bill the prompt twice."""
    meter = UsageMeter("text/event-stream")
    meter.feed(
        sse(
            [
                {"type": "message_start", "message": {"usage": {"input_tokens": 9}}},
                {"type": "message_delta", "usage": {"input_tokens": 9, "output_tokens": 4}},
                {"type": "message_delta", "usage": {"output_tokens": 11}},
            ]
        )
    )
    assert meter.totals() == (9, 11)


def test_json_usage_and_junk_are_handled() -> None:
    meter = UsageMeter("application/json")
    body = json.dumps({"usage": {"input_tokens": 3, "output_tokens": 4}}).encode()
    meter.feed(body[:5])
    meter.feed(body[5:])
    assert meter.totals() == (3, 4)
    junk = UsageMeter("text/event-stream")
    junk.feed(b'data: {not json\n\ndata: [1]\n\ndata: {"usage": {"output_tokens": true}}\n')
    assert junk.totals() == (0, 0)
    last_line_without_newline = UsageMeter("text/event-stream")
    last_line_without_newline.feed(b'data: {"usage": {"output_tokens": 8}}')
    assert last_line_without_newline.totals() == (0, 8)
