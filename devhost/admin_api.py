"""The Functions host's admin endpoint that runs a non-HTTP function now,
``POST /admin/functions/<name>`` with a JSON body ``{"input": ...}``, over the dev host's timers,
so the operator CLI's ``reap``/``purge`` work against the dev server as they do against Azure.

As the host does: 400 without a JSON object body, 404 for an unknown function (names compare
case-insensitively), else 202 at once while the run goes on in the background. As ``func start``
does (and Azure does not), no master key is checked: the dev server listens on loopback only.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from devhost.http_host import FunctionHost

log = logging.getLogger("devhost")


def add_routes(app: web.Application, host: FunctionHost) -> None:
    running: set[asyncio.Task[None]] = set()  # strong references until each run ends

    async def run_function(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=400, text='expected a JSON object like {"input": ""}')
        wanted = request.match_info["name"].lower()
        name = next((n for n in host.timers if n.lower() == wanted), None)
        if name is None:
            return web.Response(status=404)
        task = asyncio.create_task(_run(host, name))
        running.add(task)
        task.add_done_callback(running.discard)
        return web.Response(status=202)

    async def stop_runs(_: web.Application) -> None:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    app.router.add_post("/admin/functions/{name}", run_function)
    app.on_shutdown.append(stop_runs)


async def _run(host: FunctionHost, name: str) -> None:
    try:
        await host.run_timer(name)
    except Exception:
        log.exception("%s (run through /admin/functions) failed", name)
