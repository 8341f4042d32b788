"""The dev server's aiohttp app on a free loopback port, in a thread the test owns: real sockets
and the dev host's own request limits, stopped when the test ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from devhost.http_host import FunctionHost
from devhost.server import PARSER_LIMITS, build_app


@contextmanager
def loopback_server(host: FunctionHost) -> Iterator[str]:
    """Serve ``host`` on ``http://127.0.0.1:<port>``; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(host), **PARSER_LIMITS)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="loopback-devhost", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the loopback dev server did not start")
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
