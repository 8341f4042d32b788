"""The Durable Functions HTTP management API (``/runtime/webhooks/durabletask``) over the
in-process driver: what the SDK's ``DurableOrchestrationClient`` calls (through the binding's
``rpcBaseUrl``) and what operators call (``python -m admin``).

Routes, status codes and bodies follow the extension's ``HttpApiHandler``: start ``202`` (``400``
unknown orchestrator, ``409`` already running), status ``200``/``202``/``404``, raise event
``202``/``404``/``410`` (``400`` unless ``application/json``), terminate ``202``/``404``/``410``,
purge ``200``/``404``/``412``. Suspend, resume, rewind and restart answer ``501``.

Every route needs the host's system key, as on Azure: ``?code=``, ``x-functions-key``, or HTTP
Basic with the key as password (how the SDK's client presents it, see :mod:`devhost.binding`).
Without it: ``401`` JSON. Driver calls run on threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from devhost import binding
from devhost.driver import AlreadyRunning, Driver, Instance, UnknownOrchestrator

BASE = binding.WEBHOOK_PATH
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"schema_version": 1, "error": code, "message": message, **extra}, status=status
    )


def presented_key(request: web.Request) -> str | None:
    """The system key the caller presented (query ``code``, ``x-functions-key``, or Basic)."""
    if request.query.get("code"):
        return request.query["code"]
    if request.headers.get("x-functions-key"):
        return request.headers["x-functions-key"]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            _, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


class SystemKey:
    """Compares SHA-256 digests in constant time, so timing reveals nothing about the key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the management API needs a non-empty system key")
        self._digest = hashlib.sha256(key.encode()).digest()

    def accepts(self, presented: str | None) -> bool:
        candidate = hashlib.sha256((presented or "").encode()).digest()
        return hmac.compare_digest(candidate, self._digest) and presented is not None


def add_routes(app: web.Application, driver: Driver, *, system_key: str) -> None:
    key = SystemKey(system_key)

    def guarded(handler: Handler) -> Handler:
        async def check(request: web.Request) -> web.StreamResponse:
            if not key.accepts(presented_key(request)):
                return error(
                    401,
                    "unauthorized",
                    "the durable management API needs the host's system key "
                    "(?code=, x-functions-key, or HTTP Basic password)",
                )
            return await handler(request)

        return check

    def links(request: web.Request, instance_id: str) -> dict[str, str]:
        # Unlike the extension, without ``code=``: the caller has the key, and a key echoed in
        # a body is a key one log line away from leaking.
        origin = f"{request.scheme}://{request.host}"
        instance_url = f"{origin}{BASE}/instances/{quote(instance_id, safe='')}"
        suffix = f"taskHub={quote(binding.task_hub(), safe='')}&connection=Storage"
        return binding.management_urls(instance_url, instance_id, suffix)

    async def start(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        instance_id = request.match_info.get("id") or uuid.uuid4().hex
        try:
            input_ = orchestration_input(await request.read())
        except ValueError:
            return error(400, "validation_error", "Invalid JSON content")
        try:
            await asyncio.to_thread(driver.start_new, name, instance_id, input_)
        except UnknownOrchestrator as exc:
            # The SDK reads ``ExceptionMessage`` from the extension's HttpError body.
            return error(400, "validation_error", str(exc), ExceptionMessage=str(exc))
        except AlreadyRunning as exc:
            return error(409, "conflict", str(exc), ExceptionMessage=str(exc))
        payload = links(request, instance_id)
        return web.json_response(
            payload,
            status=202,
            headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"},
        )

    async def status(request: web.Request) -> web.Response:
        instance_id = request.match_info["id"]
        inst = await asyncio.to_thread(driver.status, instance_id)
        if inst is None:
            return error(404, "not_found", f"no instance {instance_id}")
        show_history = _flag(request, "showHistory", default=False)
        show_input = _flag(request, "showInput", default=True)
        body = await asyncio.to_thread(status_payload, driver, inst, show_history, show_input)
        return web.json_response(body, status=202 if inst.is_running else 200)

    async def query(request: web.Request) -> web.Response:
        wanted = {s for s in request.query.get("runtimeStatus", "").split(",") if s}
        prefix = request.query.get("instanceIdPrefix", "")
        show_input = _flag(request, "showInput", default=False)
        found = await asyncio.to_thread(driver.list_instances)
        statuses = [
            await asyncio.to_thread(status_payload, driver, inst, False, show_input)
            for inst in found
            if inst.instance_id.startswith(prefix) and (not wanted or inst.status in wanted)
        ]
        return web.json_response(statuses)

    async def purge(request: web.Request) -> web.Response:
        instance_id = request.match_info["id"]
        inst = await asyncio.to_thread(driver.status, instance_id)
        if inst is None:
            return error(404, "not_found", f"no instance {instance_id}")
        if inst.is_running:
            return error(
                412,
                "precondition_failed",
                f"only orchestrations in a terminal state can be purged; {instance_id} is "
                f"{inst.status}",
            )
        deleted = await asyncio.to_thread(driver.purge, instance_id)
        return web.json_response({"instancesDeleted": deleted})

    async def raise_event(request: web.Request) -> web.Response:
        instance_id, event = request.match_info["id"], request.match_info["event"]
        if request.content_type != "application/json":
            return error(
                400, "validation_error", "Only application/json request content is supported"
            )
        raw = await request.read()
        try:
            # The event's data is the body's JSON token, kept as is: the SDK serializes the data
            # before posting it as JSON, and the orchestrator decodes it once more.
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            return error(400, "validation_error", "Invalid JSON content")
        try:
            delivered = await asyncio.to_thread(driver.raise_event, instance_id, event, data)
        except KeyError:
            return error(404, "not_found", f"no instance {instance_id}")
        if not delivered:
            return error(410, "gone", f"instance {instance_id} has finished")
        return web.Response(status=202)

    async def terminate(request: web.Request) -> web.Response:
        instance_id = request.match_info["id"]
        reason = request.query.get("reason", "")
        try:
            terminated = await asyncio.to_thread(driver.terminate, instance_id, reason)
        except KeyError:
            return error(404, "not_found", f"no instance {instance_id}")
        if not terminated:
            return error(410, "gone", f"instance {instance_id} has finished")
        return web.Response(status=202)

    async def unsupported(request: web.Request) -> web.Response:
        operation = request.match_info["operation"]
        return error(501, "not_implemented", f"{operation} is not supported by the dev host")

    routes = [
        ("POST", "/orchestrators/{name}", start),
        ("POST", "/orchestrators/{name}/{id}", start),
        ("GET", "/instances", query),
        ("GET", "/instances/", query),
        ("GET", "/instances/{id}", status),
        ("DELETE", "/instances/{id}", purge),
        ("POST", "/instances/{id}/raiseEvent/{event}", raise_event),
        ("POST", "/instances/{id}/terminate", terminate),
        ("POST", "/instances/{id}/{operation}", unsupported),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, BASE + path, guarded(handler))
    app.router.add_route("*", BASE + "/{tail:.*}", guarded(_not_found))


async def _not_found(request: web.Request) -> web.Response:
    return error(404, "not_found", "no such durable management route")


def _flag(request: web.Request, name: str, *, default: bool) -> bool:
    raw = request.query.get(name)
    return default if raw is None else raw.lower() == "true"


def orchestration_input(raw: bytes) -> Any:
    """The orchestrator's input from a start request's body. The SDK posts the JSON text of the
    already-serialized input (a JSON string); other clients post the value itself. The worker
    treats a string input as serialized JSON, so the result is the same value either way."""
    if not raw.strip():
        return None
    token = json.loads(raw)
    if isinstance(token, str):
        try:
            return json.loads(token)
        except ValueError:
            return token
    return token


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_payload(
    driver: Driver, inst: Instance, show_history: bool, show_input: bool
) -> dict[str, Any]:
    """The extension's ``StatusResponsePayload`` (read under the driver's lock: a consistent
    snapshot of an instance that the pump may be changing)."""
    with driver.lock:
        body: dict[str, Any] = {
            "name": inst.name,
            "instanceId": inst.instance_id,
            "runtimeStatus": inst.status,
            "input": inst.input if show_input else None,
            "customStatus": inst.custom_status,
            "output": inst.output,
            "createdTime": _timestamp(inst.created),
            "lastUpdatedTime": _timestamp(inst.last_updated or inst.created),
        }
        if show_history:
            body["historyEvents"] = json.loads(json.dumps(inst.history))
        return body
