"""The proxy streams: bytes reach the builder as the upstream sends them, a reply longer than the
HTTP limit gets through, a builder that hangs up stops the upstream request, and no thread is held
per reply. Everything runs on loopback: Azurite, a fake Anthropic, the deployed ASGI app on
uvicorn, and an httpx client.

The "HTTP limit" here is what Azure's front ends enforce: the longest a response may stay silent
(230 s for Functions, 240 s for Container Apps ingress; both idle timeouts). The tests scale it to
``LIMIT`` seconds and enforce it the way a gateway does, as the client's per-read timeout."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.llm_proxy import LlmProxy, ProxySettings
from tests.conftest import submission
from tests.fake_llm_upstream import REAL_KEY
from tests.proxy.harness import ServedProxy, message_events

MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
LIMIT = 2.0  # seconds of silence the "gateway" allows
INTERVAL = 0.2  # between two upstream events
EVENTS = message_events(input_tokens=321, output_tokens=654, text_deltas=18)  # 21 events: 4 s


def headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "anthropic-version": "2023-06-01"}


def usage_of(services, job_id: str, *, wait: float = 0.0) -> dict | None:
    deadline = time.monotonic() + wait
    while True:
        usage = services.jobs.get_job(job_id).detail.get("proxy_usage")
        if usage is not None or time.monotonic() >= deadline:
            return usage
        time.sleep(0.05)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_reply_longer_than_the_http_limit_streams_through(
    services, upstream, proxy, job_token
) -> None:
    sent = upstream.stream_events(EVENTS, interval=INTERVAL)
    arrivals: list[tuple[float, bytes]] = []
    with httpx.Client(timeout=httpx.Timeout(LIMIT)) as client:
        started = time.monotonic()
        with client.stream(
            "POST", f"{proxy.url}/v1/messages", json=MESSAGE, headers=headers(job_token[1])
        ) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            for chunk in reply.iter_raw():
                arrivals.append((time.monotonic(), chunk))
    (seen,) = upstream.exchanges
    assert seen.finished_at is not None and seen.hung_up_at is None
    # The whole stream, byte for byte, and it lasted well past the limit.
    assert b"".join(chunk for _, chunk in arrivals) == sent
    assert seen.finished_at - seen.received_at >= 2 * LIMIT - 0.2
    assert arrivals[-1][0] - started > LIMIT
    # The first bytes were at the builder long before the upstream finished...
    assert arrivals[0][0] < seen.finished_at - (2 * LIMIT - 1)
    # ...and every event got through soon after the upstream sent it, not at the end.
    ends = [
        len(b"".join(sent_piece for sent_piece in upstream.stream[: i + 1]))
        for i in range(len(EVENTS))
    ]
    received, lags = 0, []
    event = 0
    for at, chunk in arrivals:
        received += len(chunk)
        while event < len(ends) and ends[event] <= received:
            lags.append(at - seen.sent_at[event])
            event += 1
    assert len(lags) == len(EVENTS)
    assert max(lags) < 0.5, lags
    # Usage was read from the events as they passed, and was recorded before the stream ended.
    usage = usage_of(services, job_token[0])
    assert usage is not None
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (1, 321, 654)
    assert usage["cost_usd"] == round((321 * 3 + 654 * 15) / 1e6, 6)


def test_a_reply_silent_past_the_limit_fails_there_and_the_upstream_request_is_closed(
    upstream, llm, proxy, job_token
) -> None:
    """The control: the limit bites when nothing flows. A non-streaming request (the whole JSON
    comes at the end) that takes longer than the limit fails at the gateway; builders must ask
    for ``stream: true`` (docs/llm-proxy.md). The proxy then stops the upstream request."""
    upstream.delay = 2 * LIMIT
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{proxy.url}/v1/messages",
            json={**MESSAGE, "stream": False},
            headers=headers(job_token[1]),
            timeout=httpx.Timeout(LIMIT),
        )
    gave_up = time.monotonic()
    assert LIMIT - 0.1 <= gave_up - started < LIMIT + 1
    (seen,) = upstream.exchanges
    assert wait_for(lambda: seen.hung_up_at is not None, 2)
    assert seen.hung_up_at is not None and seen.hung_up_at - gave_up < 1.0
    assert seen.finished_at is None
    assert wait_for(lambda: llm.in_flight() == 0)


def test_a_builder_hanging_up_mid_stream_closes_the_upstream_request(
    services, upstream, llm, proxy, job_token
) -> None:
    upstream.stream_events(EVENTS, interval=INTERVAL)
    got = b""
    with (
        httpx.Client(timeout=LIMIT) as client,
        client.stream(
            "POST", f"{proxy.url}/v1/messages", json=MESSAGE, headers=headers(job_token[1])
        ) as reply,
    ):
        for chunk in reply.iter_raw():
            got += chunk
            if got.count(b"\n\n") >= 3:
                break
    hung_up = time.monotonic()
    (seen,) = upstream.exchanges
    assert wait_for(lambda: seen.hung_up_at is not None, 2)
    assert seen.hung_up_at is not None and seen.hung_up_at - hung_up < 1.0
    assert seen.finished_at is None
    assert len(seen.sent_at) < len(EVENTS)
    assert wait_for(lambda: llm.in_flight() == 0)
    # The tokens billed so far are recorded (the prompt's count came with message_start).
    usage = usage_of(services, job_token[0], wait=5)
    assert usage is not None
    assert (usage["requests"], usage["input_tokens"]) == (1, 321)


def test_a_hang_up_frees_the_tokens_slot(upstream, llm, proxy, job_token) -> None:
    upstream.stream_events(EVENTS, interval=INTERVAL)
    url, sent = f"{proxy.url}/v1/messages", headers(job_token[1])
    with httpx.Client(timeout=LIMIT) as client:
        one = client.send(
            client.build_request("POST", url, json=MESSAGE, headers=sent), stream=True
        )
        two = client.send(
            client.build_request("POST", url, json=MESSAGE, headers=sent), stream=True
        )
        assert (one.status_code, two.status_code) == (200, 200)
        third = httpx.post(url, json=MESSAGE, headers=sent, timeout=LIMIT)
        assert (third.status_code, third.json()["error"]) == (429, "too_many_concurrent_requests")
        two.close()  # hangs up; its slot comes back while `one` is still streaming
        assert wait_for(lambda: llm.in_flight() == 1)
        again = httpx.post(url, json=MESSAGE, headers=sent, timeout=2 * LIMIT + 2)
        assert again.status_code == 200
        one.close()
    assert wait_for(lambda: llm.in_flight() == 0)


def test_an_upstream_that_breaks_off_cuts_the_builders_stream(
    services, upstream, llm, proxy, job_token
) -> None:
    upstream.stream_events(EVENTS, interval=0.05)
    upstream.break_after = 4
    received: list[bytes] = []

    def read_all() -> None:
        with httpx.stream(
            "POST",
            f"{proxy.url}/v1/messages",
            json=MESSAGE,
            headers=headers(job_token[1]),
            timeout=LIMIT,
        ) as reply:
            received.extend(reply.iter_raw())

    with pytest.raises(httpx.RemoteProtocolError):
        read_all()
    got = b"".join(received)
    assert got.count(b"\n\n") == 4  # what came, came intact; then the connection dropped
    assert wait_for(lambda: llm.in_flight() == 0)
    usage = usage_of(services, job_token[0], wait=5)
    assert usage is not None and usage["input_tokens"] == 321


def server_side_threads() -> int:
    return sum(not t.name.startswith("test-client") for t in threading.enumerate())


def test_no_thread_is_held_per_reply(services, upstream, api) -> None:
    """Sixteen replies streaming at once add no more threads than the default executor's few
    (token checks and usage writes run there briefly); a thread per call would add sixteen."""
    streams = 16
    upstream.stream_events(EVENTS[:8], interval=0.25)
    settings = ProxySettings(upstream_url=upstream.url, api_key=REAL_KEY, max_concurrent=64)
    llm = LlmProxy(services.tokens, services.jobs, settings)
    served = ServedProxy(lambda: llm)
    try:
        _, accepted, _ = api.call("POST", "/v1/jobs", body=submission("threads"))
        token = services.tokens.mint(
            accepted["job_id"], expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        # Warm up once, so the executor's lazily started threads are in the baseline.
        assert httpx.post(
            f"{served.url}/v1/messages", json=MESSAGE, headers=headers(token)
        ).is_success
        before = server_side_threads()

        async def all_at_once() -> tuple[int, list[int]]:
            # The client's own name lookups get one thread, named so it is not counted.
            client_pool = ThreadPoolExecutor(1, thread_name_prefix="test-client")
            asyncio.get_running_loop().set_default_executor(client_pool)
            started = asyncio.Event()
            first_bytes = 0
            async with httpx.AsyncClient(
                timeout=10, limits=httpx.Limits(max_connections=64)
            ) as client:

                async def one() -> int:
                    nonlocal first_bytes
                    async with client.stream(
                        "POST", f"{served.url}/v1/messages", json=MESSAGE, headers=headers(token)
                    ) as reply:
                        chunks = 0
                        async for _ in reply.aiter_raw():
                            chunks += 1
                            if chunks == 1:
                                first_bytes += 1
                                if first_bytes == streams:
                                    started.set()
                        return reply.status_code

                calls = [asyncio.create_task(one()) for _ in range(streams)]
                await asyncio.wait_for(started.wait(), 10)
                during = server_side_threads()
                assert llm.in_flight() == streams
                return during, list(await asyncio.gather(*calls))

        during, statuses = asyncio.run(all_at_once())
    finally:
        served.close()
    assert statuses == [200] * streams
    assert during - before <= min(32, (os.cpu_count() or 1) + 4) < streams, (before, during)


def test_other_paths_and_methods_are_json_errors(proxy) -> None:
    missing = httpx.get(f"{proxy.url}/v1/jobs")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = httpx.get(f"{proxy.url}/v1/messages")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"
    health = httpx.get(f"{proxy.url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "in_flight": 0}
    assert json.dumps(health.json()).find(REAL_KEY) == -1


def test_small_replies_are_not_held_back_waiting_for_an_ack(proxy) -> None:
    """The reply's head and body go out at once (Nagle off on accepted sockets); with Nagle on,
    every reply waited out the client's delayed ACK, about 40 ms."""
    took = []
    with httpx.Client() as client:
        for _ in range(21):
            start = time.perf_counter()
            assert client.post(f"{proxy.url}/v1/messages", json={}).status_code == 401
            took.append(time.perf_counter() - start)
    # The stall hits every reply; a busy machine only slows some. So: the fastest quarter.
    assert sorted(took)[5] < 0.025, took
