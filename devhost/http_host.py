"""Invokes the app's HTTP and timer functions the way the Functions host would: routes from the
indexed bindings (``routePrefix`` is empty in host.json), an ``HttpRequest`` built from the wire
request, and the durable client passed where a ``durableClient`` binding is declared."""

from __future__ import annotations

import asyncio
import inspect
import re
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devhost.indexing import binding_types, indexed_functions


@dataclass(frozen=True)
class Route:
    name: str
    template: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    literal_segments: int
    call: Any
    client_param: str | None


def _compile(template: str) -> tuple[re.Pattern[str], int]:
    parts, literals = [], 0
    for segment in template.strip("/").split("/"):
        match = re.fullmatch(r"\{(\w+)(?::[^}]*)?\}", segment)
        if match:
            parts.append(f"(?P<{match.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literals += 1
    return re.compile("^/" + "/".join(parts) + "/?$"), literals


class FunctionHost:
    def __init__(self, app: Any, client: Any) -> None:
        self.client = client
        self.routes: list[Route] = []
        self.timers: dict[str, tuple[Any, str | None]] = {}
        for function in indexed_functions(app):
            kinds = binding_types(function)
            client_param = next(
                (b.name for b in function.get_bindings() if b.type == "durableClient"), None
            )
            user = function.get_user_function()
            call = user.client_function if client_param else user
            if "httpTrigger" in kinds:
                trigger = next(b for b in function.get_bindings() if b.type == "httpTrigger")
                pattern, literals = _compile(trigger.route)
                methods = frozenset(str(getattr(m, "value", m)) for m in trigger.methods)
                self.routes.append(
                    Route(
                        function.get_function_name(),
                        trigger.route,
                        methods,
                        pattern,
                        literals,
                        call,
                        client_param,
                    )
                )
            elif "timerTrigger" in kinds:
                self.timers[function.get_function_name()] = (call, client_param)
        self.routes.sort(key=lambda r: -r.literal_segments)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | str | None:
        allowed = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if method.upper() not in route.methods:
                allowed = True
                continue
            return route, found.groupdict()
        return "method_not_allowed" if allowed else None

    async def request(
        self, method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> func.HttpResponse:
        parts = urlsplit(url)
        matched = self.match(method, parts.path)
        if matched is None:
            return func.HttpResponse("Not Found", status_code=404)
        if isinstance(matched, str):
            return func.HttpResponse("Method Not Allowed", status_code=405)
        route, route_params = matched
        request = func.HttpRequest(
            method=method.upper(),
            url=f"http://127.0.0.1{parts.path}",
            headers={k.lower(): v for k, v in (headers or {}).items()},
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
        )
        kwargs: dict[str, Any] = {"req": request}
        if route.client_param:
            kwargs[route.client_param] = self.client
        response: func.HttpResponse
        if inspect.iscoroutinefunction(route.call):
            response = await route.call(**kwargs)
        else:  # like the host: synchronous functions run on a worker thread, not the event loop
            response = await asyncio.to_thread(route.call, **kwargs)
        return response

    async def run_timer(self, name: str) -> None:
        call, client_param = self.timers[name]
        kwargs: dict[str, Any] = {"timer": mock.Mock(spec=func.TimerRequest, past_due=False)}
        if client_param:
            kwargs[client_param] = self.client
        result = call(**kwargs)
        if inspect.isawaitable(result):
            await result
