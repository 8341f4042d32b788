"""Local dev server: hosts the app's functions without ``func``.

    python -m devhost.server [--port 7071] [--proxy-port 7072] [--azurite]

HTTP routes come from the app's own bindings (same handlers, same auth), the durable
orchestrations run on the in-process driver on the real clock, and the maintenance timer fires
every minute. The builders' LLM proxy is the deployed ASGI app on the deployed server (uvicorn),
on its own loopback port, and builders are pointed at it (``FOUNDRY_SERVICE_BUILDER_PROXY_URL``).
With ``--azurite`` it starts the Azurite npm package on loopback and stops it by PID on exit.
It is a stand-in for the Functions host, not the host: no task-hub persistence, so restarting
it forgets running orchestrations (the reconciler repairs their jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from devhost import admin_api, webhooks
from devhost.client import InProcessDurableClient
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from proxy.server import bind, make_server, proxy_from_env
from shared import log_context

log = logging.getLogger("devhost")
ROOT = Path(__file__).resolve().parents[1]
#: aiohttp's own parser limits, far above the host's so that an over-long URL or header reaches
#: ``FunctionHost`` and gets the JSON envelope instead of aiohttp's bare 400. (The real host's
#: Kestrel refuses request lines over 8 KB and headers over 32 KB itself, with no JSON.)
PARSER_LIMITS: dict[str, Any] = {"max_line_size": 1024 * 1024, "max_field_size": 1024 * 1024}
DEFAULT_PROXY_PORT = 7072


def _pump(driver: Driver, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            busy = driver.step()
        except Exception:
            log.exception("durable driver step failed")
            busy = False
        if not busy:
            stop.wait(0.05)


def build_app(host: FunctionHost, client: InProcessDurableClient | None = None) -> web.Application:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # aiohttp enforces client_max_size while reading
            response = host.body_too_large()
        else:
            response = await host.request(
                request.method, request.raw_path, body=body, headers=dict(request.headers)
            )
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        return web.Response(
            status=response.status_code,
            body=response.get_body(),
            headers=headers,
            content_type=response.mimetype or "text/plain",
            charset=response.charset or None,
        )

    app = web.Application(client_max_size=host.max_body_bytes)
    if client is not None:  # loopback only: the dev server has no system keys
        webhooks.add_routes(app, client)
    admin_api.add_routes(app, host)  # POST /admin/functions/<name>, as the Functions host has
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def _timer_loop(host: FunctionHost, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await host.run_timer("maintenance")
        except Exception:
            log.exception("maintenance failed")


async def serve(port: int, maintenance_every: float, proxy_socket: socket.socket) -> None:
    import function_app  # imported late so the environment is set first

    driver = Driver(function_app.app, realtime=True)
    client = InProcessDurableClient(driver, drive=False)
    host = FunctionHost(function_app.app, client)
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(driver, stop), daemon=True, name="durable")
    pump.start()
    runner = web.AppRunner(build_app(host, client), **PARSER_LIMITS)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    timer = asyncio.create_task(_timer_loop(host, maintenance_every))
    llm_proxy = make_server(proxy_from_env, embedded=True, graceful_secs=2)
    proxy_task = asyncio.create_task(llm_proxy.serve(sockets=[proxy_socket]))
    log.info("Foundry build service on http://127.0.0.1:%d (try GET /v1/healthz)", port)
    log.info("LLM proxy on %s/v1/messages", os.environ["FOUNDRY_SERVICE_BUILDER_PROXY_URL"])
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    timer.cancel()
    llm_proxy.should_exit = True
    await proxy_task
    stop.set()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument(
        "--proxy-port", type=int, default=DEFAULT_PROXY_PORT, help="LLM proxy port (0: any free)"
    )
    parser.add_argument(
        "--azurite", action="store_true", help="start Azurite (npm package) on free loopback ports"
    )
    parser.add_argument("--maintenance-every", type=float, default=60.0)
    parser.add_argument("--json-logs", action="store_true", help="one JSON object per log line")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [%(job_id)s] %(message)s"
    )
    log_context.install(json_lines=args.json_logs)
    emulator = None
    if args.azurite:
        from tests.azurite import start_azurite

        emulator = start_azurite(ROOT / ".azurite")
        os.environ["FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING"] = emulator.connection_string
        # Azurite's well-known development key, not a secret: lets `python -m admin` join in.
        env_file = ROOT / ".azurite" / "connection.env"
        env_file.write_text(
            f"export FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING='{emulator.connection_string}'\n"
        )
        log.info("storage settings for other tools: source %s", env_file)
    os.environ.setdefault("FOUNDRY_SERVICE_BUILD_BACKEND", "local")
    if not os.environ.get("FOUNDRY_SERVICE_API_KEYS"):
        log.warning("FOUNDRY_SERVICE_API_KEYS is empty: every /v1 call will be refused (401)")
    try:
        proxy_socket = bind("127.0.0.1", args.proxy_port)
        # Builders get this as ANTHROPIC_BASE_URL; set before the app reads its settings.
        os.environ["FOUNDRY_SERVICE_BUILDER_PROXY_URL"] = (
            f"http://127.0.0.1:{proxy_socket.getsockname()[1]}"
        )
        asyncio.run(serve(args.port, args.maintenance_every, proxy_socket))
    finally:
        if emulator is not None:
            emulator.stop()
        time.sleep(0)


if __name__ == "__main__":
    main()
