"""A durable client over the Durable Functions HTTP management API
(``<app>/runtime/webhooks/durabletask``), for operators outside the Functions host.

The same routes are served by the local dev server, so the admin CLI works against both. Both
require the ``durabletask_extension`` system key; it is sent in the ``x-functions-key`` header,
not the query string, so it stays out of access logs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from admin.exits import CliError, Exit


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    runtime_status: str | None
    custom_status: Any = None
    output: Any = None
    created_time: str | None = None
    last_updated_time: str | None = None


class WebhookDurableClient:
    def __init__(
        self,
        base_url: str,
        *,
        system_key: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base = base_url.rstrip("/") + "/runtime/webhooks/durabletask"
        headers = {"x-functions-key": system_key} if system_key else {}
        self.http = client or httpx.AsyncClient(timeout=30.0)
        self.http.headers.update(headers)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get_status(self, instance_id: str) -> InstanceStatus:
        resp = await self.http.get(f"{self.base}/instances/{quote(instance_id)}")
        if resp.status_code == 404:
            return InstanceStatus(instance_id, None)
        _raise_for_status(resp)
        body = resp.json()
        return InstanceStatus(
            instance_id,
            body.get("runtimeStatus"),
            body.get("customStatus"),
            body.get("output"),
            body.get("createdTime"),
            body.get("lastUpdatedTime"),
        )

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any = None,
    ) -> str:
        url = f"{self.base}/orchestrators/{quote(orchestration_function_name)}"
        if instance_id:
            url += f"/{quote(instance_id)}"
        resp = await self.http.post(url, json=client_input)
        _raise_for_status(resp)
        return str(resp.json().get("id", instance_id))

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        url = f"{self.base}/instances/{quote(instance_id)}/raiseEvent/{quote(event_name)}"
        resp = await self.http.post(url, json=event_data)
        _raise_for_status(resp)

    async def purge_instance_history(self, instance_id: str) -> int:
        resp = await self.http.delete(f"{self.base}/instances/{quote(instance_id)}")
        if resp.status_code == 404:
            return 0
        _raise_for_status(resp)
        return int(resp.json().get("instancesDeleted", 0))


def _raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code in (401, 403):
        raise CliError(
            Exit.AUTH,
            "unauthorized",
            f"the durable management API refused the request (HTTP {resp.status_code}): set "
            "FOUNDRY_ADMIN_DURABLE_KEY to the app's durabletask_extension system key",
        )
    resp.raise_for_status()
