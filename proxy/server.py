"""How the proxy is built and served, shared by the container (``python -m proxy``), the dev
server and the tests, so all three run the same ASGI app on the same server (uvicorn)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Generator

import uvicorn

from proxy.app import ProxyApp
from shared.config.settings import Settings
from shared.llm_proxy import LlmProxy, ProxySettings
from shared.storage.clients import table_service
from shared.storage.job_store import JobStore
from shared.storage.proxy_tokens import ProxyTokenStore


def proxy_from_env() -> LlmProxy:
    """The proxy over the job and token tables named by the environment (the same settings the
    Function App reads: a connection string locally, the storage account by managed identity in
    Azure). It only reads tokens and jobs and updates job rows; it creates no tables."""
    settings = Settings.from_env()
    tables = table_service(settings)
    return LlmProxy(
        ProxyTokenStore(tables, prefix=settings.table_prefix),
        JobStore(tables, prefix=settings.table_prefix),
        ProxySettings.from_env(),
    )


class ProxyServer(uvicorn.Server):
    """uvicorn with the host process owning the signals (the dev server and tests embed it and
    stop it by setting ``should_exit``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def make_server(
    factory: Callable[[], LlmProxy], *, embedded: bool = False, graceful_secs: float = 25.0
) -> uvicorn.Server:
    """A uvicorn server for the proxy app. ``graceful_secs`` bounds how long a shutdown waits for
    open replies (ACA gives a replica 30 s after SIGTERM)."""
    config = uvicorn.Config(
        ProxyApp(factory),
        lifespan="on",
        log_config=None,  # the process's logging setup (secret scrubbing) stays in charge
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(graceful_secs),
    )
    return ProxyServer(config) if embedded else uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket bound before the server starts, so callers know the port (``0`` picks
    a free one) before anything else reads it."""
    # proto named explicitly: asyncio turns Nagle off only on sockets that say they are TCP, and
    # with Nagle on, a reply's head and first chunk wait out the client's delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
