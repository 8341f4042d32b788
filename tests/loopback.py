"""The dev server's aiohttp app on a free loopback port, in a thread the test owns: real sockets
and the dev host's own request limits, stopped when the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import function_app
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from devhost.loopback import LoopbackServer
from devhost.server import PARSER_LIMITS, build_app

#: The management API's key on these servers (the functions' binding may point elsewhere).
SYSTEM_KEY = "loopback-system-key-0123456789"


@contextmanager
def loopback_server(host: FunctionHost, driver: Driver | None = None) -> Iterator[str]:
    """Serve ``host`` (and the durable management API over ``driver``) on
    ``http://127.0.0.1:<port>``; yields the base URL."""
    app = build_app(host, driver or Driver(function_app.app), system_key=SYSTEM_KEY)
    with LoopbackServer(app, runner_options=PARSER_LIMITS) as server:
        yield server.base_url
