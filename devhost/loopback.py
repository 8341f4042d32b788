"""Serving an aiohttp application on a free loopback port from a background thread: the dev
host's HTTP side for tests and tools that drive the durable driver themselves."""

from __future__ import annotations

import asyncio
import secrets
import threading
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from devhost import webhooks
from devhost.binding import client_binding
from devhost.driver import Driver
from devhost.ports import free_port


class LoopbackServer:
    def __init__(
        self,
        app: web.Application,
        *,
        port: int | None = None,
        runner_options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None, **(runner_options or {}))
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"loopback-{self.port}", daemon=True
        )

    def start(self) -> Self:
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()


class DurableHttpHost(LoopbackServer):
    """The durable management API over ``driver`` on loopback, with a fresh system key: what a
    test's functions talk to through the real client (``binding`` is their binding value)."""

    def __init__(self, driver: Driver, *, system_key: str | None = None, **kwargs: Any) -> None:
        self.driver = driver
        self.system_key = system_key or secrets.token_urlsafe(32)
        app = web.Application()
        webhooks.add_routes(app, driver, system_key=self.system_key)
        super().__init__(app, **kwargs)
        self.binding = client_binding(self.base_url, self.system_key)
