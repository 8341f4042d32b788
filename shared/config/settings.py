"""Configuration, read once from the environment (app settings in Azure, local.settings.json
locally)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field

from shared.config.env import NOT_FROM_ENV, env_var, load
from shared.config.env import is_key_vault_reference as is_key_vault_reference
from shared.config.env import secret_setting as secret_setting
from shared.errors import ConfigurationError

log = logging.getLogger("foundry.settings")
ENV_PREFIX = "FOUNDRY_SERVICE_"
Backend = Literal["local", "azure_container_apps"]
BACKENDS: tuple[str, ...] = get_args(Backend)
#: Settings that hold secrets. In Azure they are Key Vault references, which App Service resolves
#: before the process starts; when it cannot (secret not created yet, role assignment not yet
#: effective, vault outage at restart) the process gets the reference text itself, whose vault
#: name is derived from the public app name. Such a value must never count as a secret.
SECRET_SETTINGS = (
    ENV_PREFIX + "API_KEYS",
    ENV_PREFIX + "ANTHROPIC_API_KEY",
    ENV_PREFIX + "STORAGE_CONNECTION_STRING",
    "AzureWebJobsStorage",
)


def unresolved_secret_settings(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Names (never values) of the secret settings still holding a Key Vault reference."""
    source: Mapping[str, str] = os.environ if env is None else env
    return tuple(n for n in SECRET_SETTINGS if is_key_vault_reference(source.get(n, "")))


def log_unresolved_secrets(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """At start: one error line naming every unresolved secret setting (names only)."""
    names = unresolved_secret_settings(env)
    if names:
        log.error(
            "unresolved Key Vault references count as not configured (fail closed): %s. "
            "Create the secrets and grant the app's identity read access, then restart the app.",
            ", ".join(names),
        )
    return names


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment. Each field's variable is
    ``FOUNDRY_SERVICE_`` + its name in upper case unless its ``env_var`` says otherwise
    (``shared.config.env``); the minimums are on the types."""

    api_keys: str = field(default="", metadata=env_var(secret=True))
    build_backend: Backend = "local"
    storage_connection_string: str | None = field(
        default=None,
        metadata=env_var(fallbacks=("AzureWebJobsStorage",), secret=True),
    )
    storage_account: str | None = field(
        default=None, metadata=env_var(ENV_PREFIX + "AZURE_STORAGE_ACCOUNT")
    )
    storage_container: str = field(
        default="foundry-jobs", metadata=env_var(ENV_PREFIX + "AZURE_STORAGE_CONTAINER")
    )
    table_prefix: str = "foundry"
    #: Storage clients: longest TCP/TLS connect, longest silence waiting for bytes, and retries
    #: (connection errors and throttling only; see shared.clients for why reads are not retried).
    #: A stalled endpoint thus costs a storage call about ``storage_read_timeout_secs``.
    storage_connect_timeout_secs: Annotated[float, Field(ge=0.1, allow_inf_nan=False)] = 3.0
    storage_read_timeout_secs: Annotated[float, Field(ge=0.1, allow_inf_nan=False)] = 3.0
    storage_retry_total: Annotated[int, Field(ge=0)] = 2
    max_input_bytes: Annotated[int, Field(ge=1)] = 524_288
    min_ttl_hours: Annotated[int, Field(ge=1)] = 1
    default_ttl_hours: Annotated[int, Field(ge=1)] = 24
    max_ttl_hours: Annotated[int, Field(ge=1)] = 72
    queue_cap: Annotated[int, Field(ge=1)] = 50
    max_concurrent_builds: Annotated[int, Field(ge=1)] = 3
    build_timeout_secs: Annotated[int, Field(ge=1)] = 3600
    image_build_timeout_secs: Annotated[int, Field(ge=1)] = 1800
    deploy_timeout_secs: Annotated[int, Field(ge=1)] = 600
    #: Longest wait between two status checks of a running step (log-follow latency bound).
    poll_max_secs: Annotated[int, Field(ge=2)] = 10
    #: 0 (auto): where the backend's builds push their end (runner notice, reconciler) the run
    #: waits for it with no in-history polling, else it checks on the POLL_MAX_SECS backoff;
    #: >0: always check a running build on a backoff capped at this many seconds.
    build_check_secs: Annotated[int, Field(ge=0)] = 0
    #: How long one check activity waits for a running step to change before answering.
    check_wait_secs: Annotated[int, Field(ge=0)] = 20
    preview_domain: str = "foundry.local"
    signed_url_ttl_secs: Annotated[int, Field(ge=60)] = field(
        default=900, metadata=env_var(ENV_PREFIX + "AZURE_SIGNED_URL_TTL_SECS")
    )
    #: How long a build's storage grant and proxy token outlive its build timeout: the wait for
    #: the job's replica to start, plus the final uploads after a stop.
    sas_grant_margin_secs: Annotated[int, Field(ge=300)] = 1800
    #: The LLM proxy as build jobs reach it (their ANTHROPIC_BASE_URL): its own service.
    proxy_base_url: str = field(
        default="http://127.0.0.1:7072", metadata=env_var(ENV_PREFIX + "BUILDER_PROXY_URL")
    )
    #: This service as build jobs reach it (the runner posts its build notices there).
    api_base_url: str = field(
        default="http://127.0.0.1:7071", metadata=env_var(ENV_PREFIX + "BUILDER_API_URL")
    )
    local_work_dir: str = ".foundry-local"
    local_builder_command: str = ""
    local_preview_host: str = "127.0.0.1"
    history_retention_days: Annotated[int, Field(ge=1)] = 30
    #: Secret settings that held an unresolved Key Vault reference (read as not configured).
    unresolved_secrets: tuple[str, ...] = field(default=(), metadata=NOT_FROM_ENV)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env: Mapping[str, str] = os.environ if environ is None else environ
        settings = load(
            cls,
            env,
            prefix=ENV_PREFIX,
            computed={"unresolved_secrets": unresolved_secret_settings(env)},
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.storage_connection_string and not self.storage_account:
            raise ConfigurationError(
                "job storage is not configured: set FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING "
                "(or AzureWebJobsStorage) for Azurite, or FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT "
                "for managed identity"
            )
        if not self.min_ttl_hours <= self.default_ttl_hours <= self.max_ttl_hours:
            raise ConfigurationError(
                "TTL bounds must satisfy MIN_TTL_HOURS <= DEFAULT_TTL_HOURS <= MAX_TTL_HOURS"
            )

    def clamp_ttl(self, requested: int | None) -> int:
        value = self.default_ttl_hours if requested is None else requested
        return max(self.min_ttl_hours, min(self.max_ttl_hours, value))

    @property
    def grant_ttl_secs(self) -> int:
        """Lifetime of a build's storage grant and proxy token, from when they are minted."""
        return self.build_timeout_secs + self.sas_grant_margin_secs

    @property
    def local_root(self) -> Path:
        return Path(self.local_work_dir).resolve()


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings. Tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings.from_env()
