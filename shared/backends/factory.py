"""Chooses the ``BuildBackend`` named by ``FOUNDRY_SERVICE_BUILD_BACKEND``."""

from __future__ import annotations

from shared.backends.base import BuildBackend
from shared.config.settings import Settings
from shared.errors import ConfigurationError
from shared.storage.job_blobs import JobBlobs
from shared.storage.step_markers import StepMarkers


def create_backend(settings: Settings, blobs: JobBlobs, markers: StepMarkers) -> BuildBackend:
    """``markers`` is for backends that record create-once step state in the service's tables
    (the ACR run of an image build); the local backend keeps its markers in the job directory."""
    if settings.build_backend == "local":
        from shared.backends.local import LocalBackend

        return LocalBackend(settings, blobs)
    if settings.build_backend == "azure_container_apps":
        from shared.backends.azure_aca import AzureContainerAppsBackend

        return AzureContainerAppsBackend.from_env(settings, blobs, markers)
    raise ConfigurationError(f"unknown build backend {settings.build_backend!r}")
