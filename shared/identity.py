"""The service's one Azure credential, shared by storage, the build backend and telemetry.

One credential means one token cache and one managed-identity endpoint conversation per
process, instead of three. In Azure the Function App runs as a user-assigned identity whose
client id is in ``AZURE_CLIENT_ID`` (``FOUNDRY_SERVICE_AZURE_MI_CLIENT_ID`` is the same value);
on a developer machine ``DefaultAzureCredential`` uses the developer's own login.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

CLIENT_ID_VARIABLES = ("AZURE_CLIENT_ID", "FOUNDRY_SERVICE_AZURE_MI_CLIENT_ID")


def managed_identity_client_id() -> str | None:
    for name in CLIENT_ID_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


@functools.lru_cache(maxsize=1)
def service_credential() -> TokenCredential:
    """The process-wide credential (built on first use, then reused)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = managed_identity_client_id()
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()
