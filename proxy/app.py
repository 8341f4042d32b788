"""The proxy's ASGI app: ``POST /v1/messages`` (the builders' LLM endpoint) and ``GET /healthz``.

Plain ASGI, no framework: one route, one relay. Invariants:
- The request body is read up to ``max_body_bytes + 1`` and no further (an oversize body is
  refused after the token check, as before, without being held in memory).
- Upstream bytes are sent to the builder as each chunk arrives; nothing is buffered here. The
  usage is recorded before the last (empty) chunk, so a builder that saw the end sees the count.
- While a request is in progress the app also listens for the builder hanging up; when it does,
  the work is cancelled, which closes the upstream request and frees the token's slot.
- If the upstream breaks off mid-reply, the builder's connection is closed without the final
  chunk, so the builder sees a cut stream instead of a short but "complete" one.
- Every error this app makes is JSON with a stable ``error`` code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shared.llm_proxy import LlmProxy, ProxyReply, Relay

log = logging.getLogger("foundry.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MESSAGES_PATH = "/v1/messages"
HEALTH_PATH = "/healthz"


class ProxyApp:
    """An ASGI 3 application around one :class:`LlmProxy`, built by ``factory`` at startup (so a
    missing setting fails the container's start, not the first build)."""

    def __init__(self, factory: Callable[[], LlmProxy]) -> None:
        self._factory = factory
        self.proxy: LlmProxy | None = None

    def _proxy(self) -> LlmProxy:
        if self.proxy is None:
            self.proxy = self._factory()
        return self.proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._proxy()
                except Exception as exc:
                    log.exception("LLM proxy could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.proxy is not None:
                    await self.proxy.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == MESSAGES_PATH:
            if method != "POST":
                await _send_error(send, 405, "method_not_allowed", {"allow": "POST"})
            else:
                await self._messages(scope, receive, send)
        elif path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                await _send_error(send, 405, "method_not_allowed", {"allow": "GET"})
            else:
                await self._health(send)
        else:
            await _send_error(send, 404, "not_found")

    async def _health(self, send: Send) -> None:
        proxy = self._proxy()
        state: dict[str, Any] = {"status": "ok", "in_flight": proxy.in_flight()}
        if not proxy.settings.api_key:
            state.update(status="degraded", reason="llm_credential_missing")
        await _send_whole(send, 200, {"content-type": "application/json"}, json.dumps(state))

    async def _messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self._proxy()
        body = await _read_body(receive, proxy.settings.max_body_bytes + 1)
        if body is None:
            return  # the builder left before its request was in
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # The server reports "disconnect" once the reply is complete too; only a disconnect
        # before the last byte went out is a hang-up.
        sent_all = asyncio.Event()
        work = asyncio.create_task(_answer(proxy, headers, body, send, sent_all))
        gone = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done() and not sent_all.is_set():
                log.info("builder hung up; closing its upstream request")
                work.cancel()
            await asyncio.gather(work, gone, return_exceptions=True)
        if not work.cancelled() and (error := work.exception()) is not None:
            raise error


async def _answer(
    proxy: LlmProxy, headers: dict[str, str], body: bytes, send: Send, sent_all: asyncio.Event
) -> None:
    reply = await proxy.open(headers, body)
    if isinstance(reply, ProxyReply):
        await _send_whole(send, reply.status, reply.headers, reply.body)
        sent_all.set()
        return
    await _relay(reply, send, sent_all)


async def _relay(relay: Relay, send: Send, sent_all: asyncio.Event) -> None:
    try:
        await send(
            {"type": "http.response.start", "status": relay.status, "headers": _raw(relay.headers)}
        )
        async with contextlib.aclosing(relay.chunks()) as chunks:
            async for chunk in chunks:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if relay.complete:
            # Usage is on the job before the builder sees the end (as when replies were whole).
            await relay.aclose()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            sent_all.set()
        # else: returning without the last chunk makes the server drop the connection (ASGI),
        # so the builder sees the stream break instead of a clean, truncated end.
    finally:
        await relay.aclose()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or its first ``limit`` bytes if longer; ``None`` if the client left."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) >= limit or not message.get("more_body", False):
            return bytes(body[:limit])


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of an oversize body, read and dropped


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _send_whole(send: Send, status: int, headers: dict[str, str], body: bytes | str) -> None:
    data = body.encode() if isinstance(body, str) else body
    await send({"type": "http.response.start", "status": status, "headers": _raw(headers)})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _send_error(
    send: Send, status: int, code: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"type": "error", "error": code, "message": code.replace("_", " ")})
    await _send_whole(send, status, {"content-type": "application/json", **(headers or {})}, body)
