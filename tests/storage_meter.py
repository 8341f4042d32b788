"""Counts storage round trips and the table entities they return, at the SDK transport.

``Services.build(settings, **meter.client_options())`` installs :meth:`StorageMeter.on_response`
as the azure-core ``raw_response_hook`` of the table and blob clients, so every HTTP exchange the
SDKs make (retries included) is seen once, with its method, path and, for table reads, how many
entities came back (a query page's ``value`` list, or 1 for a point read)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Exchange:
    method: str
    service: str  # "table" or "blob"
    path: str
    status: int
    entities: int
    label: str = ""  # what the caller said it was doing (StorageMeter.label)


@dataclass
class Tally:
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return len(self.exchanges)

    @property
    def entities_read(self) -> int:
        return sum(e.entities for e in self.exchanges)

    def by_service(self, service: str) -> int:
        return sum(1 for e in self.exchanges if e.service == service)

    def describe(self) -> list[str]:
        return [
            f"{e.method} {e.service} {e.path} -> {e.status} ({e.entities})" for e in self.exchanges
        ]


def _entities(response: Any) -> int:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type or response.request.method != "GET":
        return 0
    try:
        body = json.loads(response.body() or b"{}")
    except ValueError:
        return 0
    if not isinstance(body, dict):
        return 0
    if "value" in body and isinstance(body["value"], list):
        return len(body["value"])
    return 1 if "PartitionKey" in body else 0


class StorageMeter:
    """Thread-safe: concurrent requests are all counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tally: Tally | None = None
        #: Recorded with each exchange (e.g. the activity running), to attribute costs.
        self.label = ""

    def client_options(self) -> dict[str, Any]:
        return {"raw_response_hook": self.on_response}

    def on_response(self, pipeline_response: Any) -> None:
        response = pipeline_response.http_response
        request = pipeline_response.http_request
        is_table = "odata" in response.headers.get("Content-Type", "") or "DataServiceVersion" in (
            request.headers
        )
        exchange = Exchange(
            method=request.method,
            service="table" if is_table else "blob",
            path=urlsplit(request.url).path,
            status=response.status_code,
            entities=_entities(response) if is_table else 0,
            label=self.label,
        )
        with self._lock:
            if self._tally is not None:
                self._tally.exchanges.append(exchange)

    @contextmanager
    def measure(self) -> Iterator[Tally]:
        """Count what happens inside the block (only one measurement at a time)."""
        tally = Tally()
        with self._lock:
            self._tally = tally
        try:
            yield tally
        finally:
            with self._lock:
                self._tally = None


def metered_services(settings: Any) -> tuple[Any, StorageMeter]:
    """Services whose table and blob clients report to a fresh meter (installed for the app)."""
    from shared.services import Services, use_services

    meter = StorageMeter()
    svc = Services.build(settings, **meter.client_options())
    use_services(svc)
    return svc, meter
