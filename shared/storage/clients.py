"""Storage client construction: connection string for Azurite/dev, managed identity in Azure."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.config.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@functools.lru_cache(maxsize=1)
def default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def table_service(settings: Settings, **options: Any) -> TableServiceClient:
    """``options`` go to the SDK client (e.g. ``raw_request_hook`` to count calls)."""
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(
            settings.storage_connection_string, **options
        )
    return TableServiceClient(
        endpoint=f"https://{settings.storage_account}.table.core.windows.net",
        credential=default_credential(),
        **options,
    )


def blob_service(settings: Settings, **options: Any) -> BlobServiceClient:
    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(
            settings.storage_connection_string, **options
        )
    return BlobServiceClient(
        account_url=f"https://{settings.storage_account}.blob.core.windows.net",
        credential=default_credential(),
        **options,
    )
