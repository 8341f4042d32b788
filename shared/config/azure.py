"""Configuration of the ``azure_container_apps`` backend (design 000 section 7)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import ConfigurationError

P = "FOUNDRY_SERVICE_AZURE_"
REQUIRED = (
    "SUBSCRIPTION_ID",
    "RESOURCE_GROUP",
    "LOCATION",
    "STORAGE_ACCOUNT",
    "ACR_NAME",
    "ACA_ENVIRONMENT",
    "BUILDER_IMAGE",
    "IDENTITY_RESOURCE_ID",
)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc


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
    mi_client_id: str | None = None
    arm_url: str = "https://management.azure.com"
    acr_login_server: str = ""
    build_cpu: float = 2.0
    build_memory: str = "4Gi"
    preview_cpu: float = 0.5
    preview_memory: str = "1Gi"
    #: org slug (or ``*``) -> managed-environment certificate resource id, for custom domains.
    preview_certificates: dict[str, str] = field(default_factory=dict)
    #: Verify TLS with this CA bundle instead of the system one (tests use a loopback fake).
    ca_bundle: str | None = None
    warm_path: str = "/"
    #: Per-request read timeout for ARM, ACR and the preview warm-up (the SDK retries on it).
    http_timeout_secs: float = 60.0

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
        env: Mapping[str, str] = os.environ if environ is None else environ
        missing = [P + name for name in REQUIRED if not env.get(P + name, "").strip()]
        if missing:
            raise ConfigurationError(
                "FOUNDRY_SERVICE_BUILD_BACKEND=azure_container_apps needs " + ", ".join(missing)
            )
        certs_raw = env.get(P + "PREVIEW_CERTIFICATES", "").strip()
        try:
            certs = json.loads(certs_raw) if certs_raw else {}
        except ValueError as exc:
            raise ConfigurationError(f"{P}PREVIEW_CERTIFICATES must be a JSON object") from exc
        if not isinstance(certs, dict):
            raise ConfigurationError(f"{P}PREVIEW_CERTIFICATES must be a JSON object")

        def opt(name: str, default: str = "") -> str:
            return env.get(P + name, "").strip() or default

        try:
            build_cpu = float(opt("BUILD_CPU", "2.0"))
            preview_cpu = float(opt("PREVIEW_CPU", "0.5"))
        except ValueError as exc:
            raise ConfigurationError(f"{P}BUILD_CPU / PREVIEW_CPU must be numbers") from exc
        return cls(
            subscription_id=opt("SUBSCRIPTION_ID"),
            resource_group=opt("RESOURCE_GROUP"),
            location=opt("LOCATION"),
            storage_account=opt("STORAGE_ACCOUNT"),
            acr_name=opt("ACR_NAME"),
            aca_environment=opt("ACA_ENVIRONMENT"),
            builder_image=opt("BUILDER_IMAGE"),
            identity_resource_id=opt("IDENTITY_RESOURCE_ID"),
            mi_client_id=opt("MI_CLIENT_ID") or None,
            arm_url=opt("ARM_URL", "https://management.azure.com").rstrip("/"),
            acr_login_server=opt("ACR_LOGIN_SERVER"),
            build_cpu=build_cpu,
            build_memory=opt("BUILD_MEMORY", "4Gi"),
            preview_cpu=preview_cpu,
            preview_memory=opt("PREVIEW_MEMORY", "1Gi"),
            preview_certificates={str(k): str(v) for k, v in certs.items()},
            ca_bundle=opt("CA_BUNDLE") or None,
            warm_path=opt("WARM_PATH", "/"),
            http_timeout_secs=_float(env, P + "HTTP_TIMEOUT_SECS", 60.0),
        )
