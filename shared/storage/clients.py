"""Storage client construction: connection string for Azurite/dev, managed identity in Azure.

Every client is bounded (settings ``storage_*``): a connect timeout, a read timeout (the longest
silence while waiting for bytes, so large downloads still work), and a few short retries for
connection errors and throttling. Read timeouts are not retried here: a storage endpoint that
stopped answering rarely answers 100 ms later, and the callers already retry (Durable
``RetryOptions`` for activities, ``Retry-After`` on the 503 for HTTP callers). So a stalled
endpoint costs one storage call about ``storage_read_timeout_secs``, and every route answers
instead of hanging on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, LinearRetry

from shared.config.settings import Settings
from shared.identity import service_credential

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

#: Pause before a retry: short, because the retried faults (refused connections, 503 ServerBusy)
#: either clear quickly or are the callers' to retry with their own longer backoff.
RETRY_BACKOFF_SECS = 0.5
RETRY_BACKOFF_MAX_SECS = 2.0


def default_credential() -> TokenCredential:
    return service_credential()


class _ShortLinearRetry(LinearRetry):
    """The blob SDK's retry with a sub-second backoff (its own ones wait 15 s +/- 3 s)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            retry_total=settings.storage_retry_total,
            retry_connect=settings.storage_retry_total,
            retry_status=settings.storage_retry_total,
            retry_read=0,
            random_jitter_range=0,
        )

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return RETRY_BACKOFF_SECS


def _timeouts(settings: Settings) -> dict[str, Any]:
    return {
        "connection_timeout": settings.storage_connect_timeout_secs,
        "read_timeout": settings.storage_read_timeout_secs,
    }


def table_limits(settings: Settings) -> dict[str, Any]:
    """Keyword options bounding a Tables client (azure-core's transport and retry policy)."""
    return {
        **_timeouts(settings),
        "retry_total": settings.storage_retry_total,
        "retry_connect": settings.storage_retry_total,
        "retry_status": settings.storage_retry_total,
        "retry_read": 0,
        "retry_backoff_factor": RETRY_BACKOFF_SECS,
        "retry_backoff_max": RETRY_BACKOFF_MAX_SECS,
    }


def blob_limits(settings: Settings) -> dict[str, Any]:
    """Keyword options bounding a Blob client (its own retry policy class)."""
    return {**_timeouts(settings), "retry_policy": _ShortLinearRetry(settings)}


def table_service(settings: Settings, **options: Any) -> TableServiceClient:
    """``options`` go to the SDK client (e.g. ``raw_request_hook`` to count calls)."""
    options = {**table_limits(settings), **options}
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
    options = {**blob_limits(settings), **options}
    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(
            settings.storage_connection_string, **options
        )
    return BlobServiceClient(
        account_url=f"https://{settings.storage_account}.blob.core.windows.net",
        credential=default_credential(),
        **options,
    )
