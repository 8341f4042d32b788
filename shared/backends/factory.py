"""Chooses the ``BuildBackend`` named by ``FOUNDRY_SERVICE_BUILD_BACKEND``."""

from __future__ import annotations

from shared.backends.base import BuildBackend
from shared.config.settings import Settings
from shared.errors import ConfigurationError
from shared.storage.job_blobs import JobBlobs


def create_backend(settings: Settings, blobs: JobBlobs) -> BuildBackend:
    if settings.build_backend == "local":
        from shared.backends.local import LocalBackend

        return LocalBackend(settings, blobs)
    if settings.build_backend == "azure_container_apps":
        from shared.backends.azure_aca import AzureContainerAppsBackend

        return AzureContainerAppsBackend.from_env(settings, blobs)
    raise ConfigurationError(f"unknown build backend {settings.build_backend!r}")
