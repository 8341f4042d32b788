"""The service's one Azure credential, shared by storage, the build backend and telemetry.

One credential means one token cache and one managed-identity endpoint conversation per
process, instead of three. In Azure the Function App and the proxy run as a user-assigned identity
whose client id is ``AzureSettings.mi_client_id`` (``AZURE_CLIENT_ID``, or its alias
``FOUNDRY_SERVICE_AZURE_MI_CLIENT_ID``); on a developer machine ``DefaultAzureCredential`` uses the
developer's own login.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shared.config.azure import AzureSettings, P
from shared.config.env import setting_text

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def managed_identity_client_id(environ: Mapping[str, str] | None = None) -> str | None:
    """``AzureSettings.mi_client_id`` read on its own: every process builds the credential, and
    in the proxy container or with the local backend the rest of ``AzureSettings`` is unset."""
    source = os.environ if environ is None else environ
    return setting_text(AzureSettings, "mi_client_id", source, prefix=P)


@functools.lru_cache(maxsize=1)
def service_credential() -> TokenCredential:
    """The process-wide credential (built on first use, then reused)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = managed_identity_client_id()
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()
