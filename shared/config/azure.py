"""Configuration of the ``azure_container_apps`` backend (design 000 section 7)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from shared.config.env import env_var, json_object, load, required_variables, url_base

P = "FOUNDRY_SERVICE_AZURE_"


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str
    resource_group: str
    location: str
    storage_account: str
    acr_name: str
    aca_environment: str
    builder_image: str
    #: User-assigned identity the build jobs and previews run as (it holds AcrPull).
    identity_resource_id: str
    #: Client id of the user-assigned identity the app itself runs as: ``AZURE_CLIENT_ID`` (what
    #: azure-identity reads, set by the infra) first. ``shared.identity`` reads this field alone.
    mi_client_id: str | None = field(
        default=None, metadata=env_var("AZURE_CLIENT_ID", fallbacks=(P + "MI_CLIENT_ID",))
    )
    arm_url: str = field(
        default="https://management.azure.com", metadata=env_var(pre_parse=url_base)
    )
    acr_login_server: str = ""
    build_cpu: Annotated[float, Field(allow_inf_nan=False)] = 2.0
    build_memory: str = "4Gi"
    preview_cpu: Annotated[float, Field(allow_inf_nan=False)] = 0.5
    preview_memory: str = "1Gi"
    #: org slug (or ``*``) -> managed-environment certificate resource id, for custom domains.
    preview_certificates: dict[str, str] = field(
        default_factory=dict, metadata=env_var(pre_parse=json_object)
    )
    #: Verify TLS with this CA bundle instead of the system one (tests use a loopback fake).
    ca_bundle: str | None = None
    warm_path: str = "/"
    #: Per-request read timeout for ARM, ACR and the preview warm-up (the SDK retries on it).
    http_timeout_secs: Annotated[float, Field(allow_inf_nan=False)] = 60.0

    @property
    def environment_id(self) -> str:
        if self.aca_environment.startswith("/subscriptions/"):
            return self.aca_environment
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.App/managedEnvironments/{self.aca_environment}"
        )

    @property
    def registry_server(self) -> str:
        return self.acr_login_server or f"{self.acr_name}.azurecr.io"

    def certificate_for(self, org_slug: str | None) -> str | None:
        if org_slug and org_slug in self.preview_certificates:
            return self.preview_certificates[org_slug]
        return self.preview_certificates.get("*")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AzureSettings:
        """Refuses every unset required variable in one message, then any bad value by name."""
        return load(
            cls,
            os.environ if environ is None else environ,
            prefix=P,
            missing="FOUNDRY_SERVICE_BUILD_BACKEND=azure_container_apps needs ",
        )


#: The required variables, without the prefix (the fields without a default).
REQUIRED = tuple(name.removeprefix(P) for name in required_variables(AzureSettings, P))
