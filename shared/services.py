"""The process-wide service objects (stores, blobs, backend), built once from settings.

Function triggers must be module-level functions, so activities and HTTP handlers reach their
dependencies through :func:`get_services`; tests install their own with :func:`use_services`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from shared.backends.base import BuildBackend
from shared.backends.factory import create_backend
from shared.config.settings import Settings, get_settings
from shared.storage.audit import AuditLog
from shared.storage.build_slots import BuildSlots
from shared.storage.claims import ClaimStore
from shared.storage.clients import blob_service, table_service
from shared.storage.job_blobs import JobBlobs
from shared.storage.job_store import JobStore
from shared.storage.proxy_tokens import ProxyTokenStore
from shared.storage.step_markers import StepMarkers


@dataclass
class Services:
    settings: Settings
    jobs: JobStore
    claims: ClaimStore
    tokens: ProxyTokenStore
    blobs: JobBlobs
    audit: AuditLog
    backend: BuildBackend
    slots: BuildSlots
    markers: StepMarkers

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        backend: BuildBackend | None = None,
        provision: bool = True,
        **client_options: Any,
    ) -> Services:
        """Wire the stores; ``provision=False`` skips creating tables and the container (for
        readers such as the admin CLI, whose role may not allow creating them)."""
        tables = table_service(settings, **client_options)
        blobs = JobBlobs(
            blob_service(settings, **client_options), container=settings.storage_container
        )
        markers = StepMarkers(tables, prefix=settings.table_prefix)
        services = cls(
            settings=settings,
            jobs=JobStore(tables, prefix=settings.table_prefix),
            claims=ClaimStore(tables, prefix=settings.table_prefix),
            tokens=ProxyTokenStore(tables, prefix=settings.table_prefix),
            blobs=blobs,
            audit=AuditLog(tables, prefix=settings.table_prefix),
            backend=backend or create_backend(settings, blobs, markers),
            slots=BuildSlots(tables, prefix=settings.table_prefix),
            markers=markers,
        )
        if provision:
            services.provision()
        return services

    def provision(self) -> None:
        """Create tables and the container if missing (cheap and idempotent)."""
        self.jobs.create_tables()
        self.claims.create_tables()
        self.tokens.create_tables()
        self.slots.create_tables()
        self.audit.create_tables()
        self.markers.create_tables()
        self.blobs.create_container()


_lock = threading.Lock()
_current: Services | None = None


def get_services() -> Services:
    global _current
    with _lock:
        if _current is None:
            _current = Services.build(get_settings())
        return _current


def use_services(services: Services | None) -> None:
    """Install (or with ``None``, forget) the services every function uses."""
    global _current
    with _lock:
        _current = services
