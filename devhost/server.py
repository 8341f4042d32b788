"""Local dev server: hosts the app's functions without ``func``.

    python -m devhost.server [--port 7071] [--proxy-port 7072] [--state-dir .foundry-local]
                             [--azurite]

HTTP routes come from the app's own bindings (same handlers, same auth) and run on the worker
loop; functions with a ``durableClient`` binding get the SDK's real client, which calls this
server's Durable HTTP management API over loopback with the system key. Orchestrations run on
the in-process driver on the real clock (activities on a pump's worker threads), and the
maintenance timer fires every minute. The builders' LLM proxy is the deployed ASGI app on the
deployed server (uvicorn), on its own loopback port; builders are pointed at it
(``FOUNDRY_SERVICE_BUILDER_PROXY_URL``) and at this server for their build notices
(``FOUNDRY_SERVICE_BUILDER_API_URL``), both following the ports actually used.

With ``--state-dir`` the server keeps its data: settings generated once (``settings.env``), the
orchestration instances (``durable/``, resumed after a restart), pid files (``pids/``: a
killed server's Azurite and builds are cleaned up at the next start) and the local work dir
(``work/``). With ``--azurite`` it starts Azurite on loopback, persisting in ``--azurite-dir``
(default ``.azurite/``), and stops it on exit; Azurite also dies with the server if the server is
killed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from devhost import admin_api, local_settings, webhooks
from devhost.binding import client_binding
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from devhost.instance_store import InstanceStore
from devhost.pidfiles import PidFiles
from devhost.pump import Pump
from proxy.server import bind, make_server, proxy_from_env
from shared import log_context

log = logging.getLogger("devhost")
ROOT = Path(__file__).resolve().parents[1]
#: aiohttp's own parser limits, far above the host's so that an over-long URL or header reaches
#: ``FunctionHost`` and gets the JSON envelope instead of aiohttp's bare 400. (The real host's
#: Kestrel refuses request lines over 8 KB and headers over 32 KB itself, with no JSON.)
PARSER_LIMITS: dict[str, Any] = {"max_line_size": 1024 * 1024, "max_field_size": 1024 * 1024}
AZURITE = "azurite"
#: Finished orchestrations kept in memory; older ones are answered from the state directory.
MAX_FINISHED_IN_MEMORY = 200
DEFAULT_PROXY_PORT = 7072


class AccessLogger(AbstractAccessLogger):
    """Method, path, status and time: never the query string (it may carry ``code=``)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status, time * 1000
        )


def build_app(host: FunctionHost, driver: Driver, *, system_key: str) -> web.Application:
    """The durable management API (key-guarded), then every HTTP function route."""

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
    webhooks.add_routes(app, driver, system_key=system_key)
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


@dataclass
class Options:
    port: int
    maintenance_every: float
    state_dir: Path | None
    system_key: str
    proxy_socket: socket.socket


async def serve(options: Options) -> None:
    import function_app  # imported late so the environment is set first

    store = InstanceStore(options.state_dir / "durable") if options.state_dir else None
    driver = Driver(
        function_app.app, realtime=True, store=store, max_finished=MAX_FINISHED_IN_MEMORY
    )
    resumed = driver.resume_from_store()
    if resumed:
        log.info("resumed %d running orchestration(s) from %s", len(resumed), store and store.root)
    base_url = f"http://127.0.0.1:{options.port}"
    host = FunctionHost(function_app.app, client_binding(base_url, options.system_key))
    pump = Pump(driver)
    pump.start()
    runner = web.AppRunner(
        build_app(host, driver, system_key=options.system_key),
        access_log_class=AccessLogger,
        **PARSER_LIMITS,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", options.port).start()
    timer = asyncio.create_task(_timer_loop(host, options.maintenance_every))
    llm_proxy = make_server(proxy_from_env, embedded=True, graceful_secs=2)
    proxy_task = asyncio.create_task(llm_proxy.serve(sockets=[options.proxy_socket]))
    log.info("Foundry build service on %s (try GET /v1/healthz)", base_url)
    log.info("LLM proxy on %s/v1/messages", os.environ["FOUNDRY_SERVICE_BUILDER_PROXY_URL"])
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    timer.cancel()
    llm_proxy.should_exit = True
    await proxy_task
    await runner.cleanup()
    pump.stop()


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 7071))
    parser.add_argument(
        "--proxy-port", type=int, default=DEFAULT_PROXY_PORT, help="LLM proxy port (0: any free)"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="keep settings, orchestrations and pid files here"
    )
    parser.add_argument("--azurite", action="store_true", help="start Azurite on loopback")
    parser.add_argument("--azurite-dir", type=Path, default=ROOT / ".azurite")
    parser.add_argument("--maintenance-every", type=float, default=60.0)
    parser.add_argument("--json-logs", action="store_true", help="one JSON object per log line")
    return parser.parse_args()


def _prepare_state(state: Path) -> PidFiles:
    """Settings (created once, applied to unset variables), ownership, stale cleanup."""
    settings_file = state / "settings.env"
    if local_settings.ensure_settings_file(settings_file):
        log.info("generated local settings with fresh keys: %s", settings_file)
    applied = local_settings.apply_defaults(
        os.environ, local_settings.read_settings_file(settings_file)
    )
    if local_settings.API_KEYS in applied:
        log.info("API keys for /v1 from %s (not shown)", settings_file)
    os.environ.setdefault("FOUNDRY_SERVICE_LOCAL_WORK_DIR", str(state / "work"))
    pids = PidFiles(state / "pids")
    pids.claim()
    pids.kill_stale()
    from shared.backends.local import kill_stale_builds

    work = Path(os.environ["FOUNDRY_SERVICE_LOCAL_WORK_DIR"]).resolve()
    killed = kill_stale_builds(work)
    if killed:
        log.warning("killed %d build process(es) left by a previous dev server", len(killed))
    return pids


def main() -> None:
    args = _parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [%(job_id)s] %(message)s"
    )
    log_context.install(json_lines=args.json_logs)
    state: Path | None = args.state_dir.resolve() if args.state_dir else None
    pids = _prepare_state(state) if state else None
    os.environ.setdefault("FOUNDRY_SERVICE_BUILD_BACKEND", "local")
    # Builders send their notices (with their token) to this server's port, not a default one.
    os.environ.setdefault("FOUNDRY_SERVICE_BUILDER_API_URL", f"http://127.0.0.1:{args.port}")
    system_key = os.environ.get(local_settings.SYSTEM_KEY) or secrets.token_urlsafe(32)
    emulator = None
    try:
        if args.azurite:
            from devhost.azurite import start_azurite

            location = args.azurite_dir.resolve()
            emulator = start_azurite(location, location=location, die_with_parent=True)
            if pids is not None:
                pids.record(AZURITE, emulator.process.pid, hint=str(location))
            os.environ["FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING"] = emulator.connection_string
        if state is not None:
            _write_admin_env(state / "admin.env", args.port, system_key)
        if not os.environ.get(local_settings.API_KEYS, "").strip():
            log.warning("FOUNDRY_SERVICE_API_KEYS is empty: every /v1 call will be refused (401)")
        proxy_socket = bind("127.0.0.1", args.proxy_port)
        # Builders get this as ANTHROPIC_BASE_URL; set before the app reads its settings.
        os.environ["FOUNDRY_SERVICE_BUILDER_PROXY_URL"] = (
            f"http://127.0.0.1:{proxy_socket.getsockname()[1]}"
        )
        options = Options(args.port, args.maintenance_every, state, system_key, proxy_socket)
        asyncio.run(serve(options))
    finally:
        if emulator is not None:
            emulator.stop()
        if pids is not None:
            pids.release(AZURITE)
            pids.release("server")


def _write_admin_env(path: Path, port: int, system_key: str) -> None:
    """What ``python -m admin`` needs to join in (app URL, API key, durable system key,
    storage). Readable by this user only: it holds keys."""
    lines = [
        f"export FOUNDRY_ADMIN_APP_URL='http://127.0.0.1:{port}'",
        f"export FOUNDRY_ADMIN_DURABLE_KEY='{system_key}'",
    ]
    first_key = os.environ.get(local_settings.API_KEYS, "").split(",")[0].split("|")[0].strip()
    if first_key:
        lines.append(f"export FOUNDRY_ADMIN_API_KEY='{first_key}'")
    connection = os.environ.get("FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING")
    if connection:
        # Azurite's well-known development key, not a secret.
        lines.append(f"export FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING='{connection}'")
    local_settings.write_private(path, "\n".join(lines) + "\n")
    log.info("settings for the admin CLI: source %s", path)


if __name__ == "__main__":
    main()
