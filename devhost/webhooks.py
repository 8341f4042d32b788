"""The Durable Functions HTTP management API (``/runtime/webhooks/durabletask``) over the
in-process driver, so operator tools (``python -m admin``) work against the dev server too."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from devhost.client import InProcessDurableClient

BASE = "/runtime/webhooks/durabletask"


def add_routes(app: web.Application, client: InProcessDurableClient) -> None:
    async def status(request: web.Request) -> web.Response:
        inst = client.driver.instances.get(request.match_info["id"])
        if inst is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response(
            {
                "name": inst.name,
                "instanceId": inst.instance_id,
                "runtimeStatus": inst.status,
                "customStatus": inst.custom_status,
                "output": inst.output,
                "input": inst.input,
                "createdTime": inst.created.isoformat(),
                "lastUpdatedTime": (inst.last_updated or inst.created).isoformat(),
            }
        )

    async def purge(request: web.Request) -> web.Response:
        deleted = client.driver.purge(request.match_info["id"])
        return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)

    async def raise_event(request: web.Request) -> web.Response:
        data: Any = await _json(request)
        try:
            await client.raise_event(request.match_info["id"], request.match_info["event"], data)
        except Exception:  # noqa: BLE001 - unknown instance
            return web.json_response({"message": "not found"}, status=404)
        return web.Response(status=202)

    async def start(request: web.Request) -> web.Response:
        instance = await client.start_new(
            request.match_info["name"], request.match_info.get("id"), await _json(request)
        )
        return web.json_response({"id": instance}, status=202)

    app.router.add_get(BASE + "/instances/{id}", status)
    app.router.add_delete(BASE + "/instances/{id}", purge)
    app.router.add_post(BASE + "/instances/{id}/raiseEvent/{event}", raise_event)
    app.router.add_post(BASE + "/orchestrators/{name}/{id}", start)


async def _json(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw else None
