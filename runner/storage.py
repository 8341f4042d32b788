"""Blob clients made from the grant's SAS URLs, and the few whole-blob operations the runner does.

Every client is a plain ``BlobClient.from_blob_url``: the SAS in the URL is the only credential.
The SDK's own retry is kept short (the default waits 15 s and more between tries, which would
stall a live log); the callers decide what to do when it gives up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, ContentSettings, LinearRetry

#: Makes a client for one SAS URL (tests pass one with a fault-injecting transport).
BlobClientFactory = Callable[[str], BlobClient]


def sas_blob_client(url: str, **kwargs: Any) -> BlobClient:
    return BlobClient.from_blob_url(
        url,
        retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=3),
        connection_timeout=10,
        read_timeout=60,
        **kwargs,
    )


def download(client: BlobClient) -> bytes:
    return client.download_blob().readall()


def read_if_exists(client: BlobClient) -> bytes | None:
    try:
        return download(client)
    except ResourceNotFoundError:
        return None


def upload_file(client: BlobClient, path: Path, *, content_type: str) -> None:
    """Replace the blob with the file's bytes (a re-run uploads the same artifact again)."""
    with path.open("rb") as data:
        client.upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            max_concurrency=2,
        )


def create_once(
    client: BlobClient,
    data: bytes | IO[bytes],
    *,
    content_type: str,
    metadata: dict[str, str] | None = None,
) -> bool:
    """Write the blob (with ``metadata``, in the same request) only if it does not exist yet;
    ``False`` when it already did."""
    try:
        client.upload_blob(
            data,
            overwrite=False,
            content_settings=ContentSettings(content_type=content_type),
            metadata=metadata,
        )
    except ResourceExistsError:
        return False
    except HttpResponseError as exc:
        if exc.status_code in (409, 412):
            return False
        raise
    return True
