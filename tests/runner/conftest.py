"""Fixtures for the runner's tests: a fresh blob container on the session's Azurite, and a job
set up in it as the service would before starting a build."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from shared.storage.job_blobs import JobBlobs
from tests.azurite import Azurite
from tests.runner.harness import Job, make_job


@pytest.fixture
def job_blobs(azurite: Azurite) -> Iterator[JobBlobs]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    blobs = JobBlobs(service, container=f"runner-{uuid.uuid4().hex[:12]}")
    blobs.create_container()
    try:
        yield blobs
    finally:
        blobs.container.delete_container()


@pytest.fixture
def job(job_blobs: JobBlobs, tmp_path: Path) -> Job:
    return make_job(
        job_blobs,
        tmp_path / "workspace",
        spec_md="# Sticker shop\n\nSell stickers.\n",
        tasks_md="- [ ] T1: Build the page\n- [ ] T2: Style it\n",
    )
