"""Invokes the app's HTTP and timer functions the way the Functions host would: routes from the
indexed bindings (``routePrefix`` is empty in host.json), an ``HttpRequest`` built from the wire
request, and, where a ``durableClient`` binding is declared, the binding's JSON value (see
:mod:`devhost.binding`), which the SDK's own wrapper turns into a real
``DurableOrchestrationClient``. Invocations run on the worker loop (:mod:`devhost.worker`).

Routing follows the host (see ``api.routing``): function routes are tried in function-name order
(ordinal, ignoring case), literal segments match ignoring case, a method mismatch falls through to
the next route, and ``{*name}`` catches the rest of the path. The host's request limits are
enforced before any function runs: a URL (path and query) over 8000 bytes and a body over the
host's ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` (default 100 MiB). Where the real host would answer
those, or a path no function matches, with a bare status, this stand-in answers with the service's
JSON envelope (the app's own catch-all route normally answers unmatched paths first).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from api.http import ApiError, ErrorCode
from api.routing import MAX_URL_BYTES, template_pattern, url_bytes
from devhost.indexing import binding_types, indexed_functions
from devhost.worker import WorkerLoop, worker_loop

#: The host's default body limit (``ScriptConstants.DefaultMaxRequestBodySize``, overridable with
#: the same app setting); its URL limit is ``api.routing.MAX_URL_BYTES``.
DEFAULT_MAX_BODY_BYTES = 104_857_600
ALL_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE"})


def host_max_body_bytes(environ: dict[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "")
    return int(raw) if raw.isascii() and raw.isdigit() else DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class Route:
    name: str
    template: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    call: Any
    client_param: str | None


def _host_order(name: str) -> str:
    """.NET's ``StringComparer.OrdinalIgnoreCase``: compare upper-cased code points."""
    return name.upper()


class FunctionHost:
    def __init__(
        self,
        app: Any,
        durable_binding: str | None,
        *,
        worker: WorkerLoop | None = None,
        max_url_bytes: int = MAX_URL_BYTES,
        max_body_bytes: int | None = None,
    ) -> None:
        """``durable_binding``: the ``durableClient`` binding value (``None``: the app declares
        no such binding, or the test does not need one)."""
        self.durable_binding = durable_binding
        self.worker = worker or worker_loop()
        self.max_url_bytes = max_url_bytes
        self.max_body_bytes = host_max_body_bytes() if max_body_bytes is None else max_body_bytes
        self.routes: list[Route] = []
        self.timers: dict[str, tuple[Any, str | None]] = {}
        for function in indexed_functions(app):
            kinds = binding_types(function)
            client_param = next(
                (b.name for b in function.get_bindings() if b.type == "durableClient"), None
            )
            call = function.get_user_function()  # with a client: the SDK's client middleware
            if "httpTrigger" in kinds:
                trigger = next(b for b in function.get_bindings() if b.type == "httpTrigger")
                methods = (  # no methods declared: the host accepts every method
                    frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods)
                    if trigger.methods
                    else ALL_METHODS
                )
                self.routes.append(
                    Route(
                        function.get_function_name(),
                        trigger.route,
                        methods,
                        template_pattern(trigger.route),
                        call,
                        client_param,
                    )
                )
            elif "timerTrigger" in kinds:
                self.timers[function.get_function_name()] = (call, client_param)
        self.routes.sort(key=lambda r: _host_order(r.name))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | frozenset[str]:
        """The first route (in the host's order) whose template and method match, else the
        methods of the routes whose template alone matches (empty: no such path)."""
        allowed: set[str] = set()
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if method.upper() not in route.methods:
                allowed |= route.methods
                continue
            # Route values arrive decoded, as ASP.NET routing decodes them.
            return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return frozenset(allowed)

    async def request(
        self, method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> func.HttpResponse:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if url_bytes(url) > self.max_url_bytes:
            return ApiError(
                414, ErrorCode.URI_TOO_LONG, f"the URL is longer than {self.max_url_bytes} bytes"
            ).response()
        if len(body) > self.max_body_bytes:
            return self.body_too_large()
        matched = self.match(method, parts.path)
        if isinstance(matched, frozenset):
            if not matched:
                return ApiError(404, ErrorCode.NOT_FOUND, "no such route").response()
            return ApiError(
                405,
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{method.upper()} is not allowed here",
                {"Allow": ", ".join(sorted(matched))},
            ).response()
        route, route_params = matched
        request = func.HttpRequest(
            method=method.upper(),
            url=f"http://127.0.0.1{target}",
            headers={k.lower(): v for k, v in (headers or {}).items()},
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
        )
        kwargs: dict[str, Any] = {"req": request}
        if route.client_param:
            kwargs[route.client_param] = self._binding()
        response: func.HttpResponse = await self.worker.call(self._invoke(route.call, kwargs))
        return response

    def body_too_large(self) -> func.HttpResponse:
        return ApiError(
            413,
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"the request body is larger than {self.max_body_bytes} bytes",
        ).response()

    async def run_timer(self, name: str) -> None:
        call, client_param = self.timers[name]
        kwargs: dict[str, Any] = {"timer": mock.Mock(spec=func.TimerRequest, past_due=False)}
        if client_param:
            kwargs[client_param] = self._binding()
        await self.worker.call(self._invoke(call, kwargs))

    def _binding(self) -> str:
        if self.durable_binding is None:
            raise RuntimeError("this host was built without a durableClient binding value")
        return self.durable_binding

    @staticmethod
    async def _invoke(call: Any, kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(call):
            return await call(**kwargs)
        # Like the worker: synchronous functions run on a thread, not on the event loop.
        return await asyncio.to_thread(call, **kwargs)
