"""A fake Anthropic upstream and a served proxy, both on loopback, each on its own thread and
event loop (used by the proxy tests and the first-byte benchmark).

The fake streams SSE events at a set pace and records, on one monotonic clock, when the request
came in, when each event went out, when the reply finished, and when the caller hung up."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from proxy.server import bind, make_server
from shared.llm_proxy import LlmProxy


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def message_events(
    *, input_tokens: int, output_tokens: int, text_deltas: int
) -> list[dict[str, Any]]:
    """A Messages stream: start (input count), deltas, message_delta (final output count)."""
    usage = {"input_tokens": input_tokens, "output_tokens": 1}
    start = {"type": "message_start", "message": {"id": "msg_1", "usage": usage}}
    deltas = [
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": f"t{i} "}}
        for i in range(text_deltas)
    ]
    end = {"type": "message_delta", "usage": {"output_tokens": output_tokens}}
    return [start, *deltas, end, {"type": "message_stop"}]


@dataclass
class Exchange:
    """What the fake saw of one request (times are ``time.monotonic()``)."""

    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    sent_at: list[float] = field(default_factory=list)
    finished_at: float | None = None
    hung_up_at: float | None = None


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=name)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class FakeAnthropic:
    """``POST /v1/messages``. Reply modes: a whole body after ``delay`` (the default, JSON), or,
    with ``stream`` set, SSE ``events`` one every ``interval`` seconds (``chunks`` overrides the
    byte pieces sent, for split-boundary tests)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.status = 200
        self.headers: dict[str, str] = {"content-type": "application/json"}
        self.body = json.dumps(
            {"id": "msg_1", "usage": {"input_tokens": 100, "output_tokens": 50}}
        ).encode()
        self.delay = 0.0
        self.stream: list[bytes] | None = None
        self.interval = 0.0
        #: With a stream: drop the connection after this many events, without ending the body.
        self.break_after: int | None = None
        self._thread = LoopThread("fake-anthropic")
        self._runner = self._thread.run(self._start())
        self.url = f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [{"path": e.path, "headers": e.headers, "body": e.body} for e in self.exchanges]

    def stream_events(self, events: list[dict[str, Any]], *, interval: float) -> bytes:
        self.status, self.headers = 200, {"content-type": "text/event-stream"}
        self.stream = [sse([e]) for e in events]
        self.interval = interval
        return b"".join(self.stream)

    async def _start(self) -> web.AppRunner:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = runner.addresses[0][1]
        return runner

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        seen = Exchange(request.path, dict(request.headers), body, time.monotonic())
        self.exchanges.append(seen)
        try:
            return await self._reply(request, seen)
        except (ConnectionError, asyncio.CancelledError):
            seen.hung_up_at = seen.hung_up_at or time.monotonic()
            raise

    async def _wait(self, request: web.Request, seen: Exchange, seconds: float) -> None:
        """Sleep, noticing a hang-up within 20 ms (a write would only notice at the next send)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            transport = request.transport
            if transport is None or transport.is_closing():
                seen.hung_up_at = time.monotonic()
                raise ConnectionResetError("caller hung up")
            await asyncio.sleep(min(0.02, max(0.0, end - time.monotonic())))

    async def _reply(self, request: web.Request, seen: Exchange) -> web.StreamResponse:
        await self._wait(request, seen, self.delay)
        extra = {"x-upstream-secret-header": "should-not-pass"}
        if self.stream is None:
            response = web.Response(
                status=self.status, body=self.body, headers={**self.headers, **extra}
            )
            seen.sent_at.append(time.monotonic())
            seen.finished_at = time.monotonic()
            return response
        stream = web.StreamResponse(status=self.status, headers={**self.headers, **extra})
        await stream.prepare(request)
        for i, piece in enumerate(self.stream):
            if i:
                await self._wait(request, seen, self.interval)
            await stream.write(piece)
            seen.sent_at.append(time.monotonic())
            if self.break_after is not None and len(seen.sent_at) >= self.break_after:
                assert request.transport is not None
                request.transport.abort()
                return stream
        await stream.write_eof()
        seen.finished_at = time.monotonic()
        return stream

    def close(self) -> None:
        """Stop listening (idempotent: a test may close it early to make it unreachable)."""
        if self._thread.loop.is_closed():
            return
        self._thread.run(self._runner.cleanup())
        self._thread.stop()


class ServedProxy:
    """The proxy's ASGI app on uvicorn (as deployed) on a free loopback port."""

    def __init__(self, factory: Callable[[], LlmProxy]) -> None:
        self._thread = LoopThread("llm-proxy")
        self.server = make_server(factory, embedded=True, graceful_secs=2)
        sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._done = asyncio.run_coroutine_threadsafe(
            self.server.serve(sockets=[sock]), self._thread.loop
        )
        deadline = time.monotonic() + 10
        while not self.server.started:
            if self._done.done():
                self._done.result()  # startup failed: raise why
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self._done.result(15)
        self._thread.stop()
