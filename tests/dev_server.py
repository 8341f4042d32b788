"""Serves an aiohttp application (the dev server's, built by ``devhost.server.build_app``) on a
free loopback port from a background thread, for tests that talk to it over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web

from tests.azurite import free_port


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """Yields the base URL; stops the server and its event loop on exit."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="dev-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
