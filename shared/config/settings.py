"""Configuration, read once from the environment (app settings in Azure, local.settings.json
locally)."""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigurationError

log = logging.getLogger("foundry.settings")
ENV_PREFIX = "FOUNDRY_SERVICE_"
BACKENDS = ("local", "azure_container_apps")
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
_KEY_VAULT_REFERENCE = re.compile(r"@\s*microsoft\s*\.\s*keyvault\s*\(", re.IGNORECASE)


def is_key_vault_reference(value: str) -> bool:
    """True when ``value`` contains ``@Microsoft.KeyVault(`` in any case or spacing: anywhere,
    not only at the start, so a key list with one unresolved entry fails closed as a whole."""
    return _KEY_VAULT_REFERENCE.search(value) is not None


def secret_setting(env: Mapping[str, str], name: str) -> str:
    """The secret's value (stripped), or ``""`` when unset or an unresolved Key Vault reference:
    an unresolved reference is "not configured", never a usable secret."""
    value = env.get(name, "").strip()
    return "" if is_key_vault_reference(value) else value


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


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if not value >= minimum:  # also refuses nan
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment. Names are ``FOUNDRY_SERVICE_*``."""

    api_keys: str = ""
    build_backend: str = "local"
    storage_connection_string: str | None = None
    storage_account: str | None = None
    storage_container: str = "foundry-jobs"
    table_prefix: str = "foundry"
    #: Storage clients: longest TCP/TLS connect, longest silence waiting for bytes, and retries
    #: (connection errors and throttling only; see shared.clients for why reads are not retried).
    #: A stalled endpoint thus costs a storage call about ``storage_read_timeout_secs``.
    storage_connect_timeout_secs: float = 3.0
    storage_read_timeout_secs: float = 3.0
    storage_retry_total: int = 2
    max_input_bytes: int = 524_288
    min_ttl_hours: int = 1
    default_ttl_hours: int = 24
    max_ttl_hours: int = 72
    queue_cap: int = 50
    max_concurrent_builds: int = 3
    build_timeout_secs: int = 3600
    image_build_timeout_secs: int = 1800
    deploy_timeout_secs: int = 600
    #: Longest wait between two status checks of a running step (log-follow latency bound).
    poll_max_secs: int = 10
    #: 0 (auto): where the backend's builds push their end (runner notice, reconciler) the run
    #: waits for it with no in-history polling, else it checks on the POLL_MAX_SECS backoff;
    #: >0: always check a running build on a backoff capped at this many seconds.
    build_check_secs: int = 0
    #: How long one check activity waits for a running step to change before answering.
    check_wait_secs: int = 20
    preview_domain: str = "foundry.local"
    signed_url_ttl_secs: int = 900
    #: How long a build's storage grant and proxy token outlive its build timeout: the wait for
    #: the job's replica to start, plus the final uploads after a stop.
    sas_grant_margin_secs: int = 1800
    #: The LLM proxy as build jobs reach it (their ANTHROPIC_BASE_URL): its own service.
    proxy_base_url: str = "http://127.0.0.1:7072"
    #: This service as build jobs reach it (the runner posts its build notices there).
    api_base_url: str = "http://127.0.0.1:7071"
    local_work_dir: str = ".foundry-local"
    local_builder_command: str = ""
    local_preview_host: str = "127.0.0.1"
    history_retention_days: int = 30
    #: Secret settings that held an unresolved Key Vault reference (read as not configured).
    unresolved_secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env: Mapping[str, str] = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(ENV_PREFIX + name, default).strip() or default

        backend = get("BUILD_BACKEND", "local")
        if backend not in BACKENDS:
            raise ConfigurationError(
                f"{ENV_PREFIX}BUILD_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}"
            )
        connection = secret_setting(env, ENV_PREFIX + "STORAGE_CONNECTION_STRING") or (
            secret_setting(env, "AzureWebJobsStorage")
        )
        settings = cls(
            api_keys=secret_setting(env, ENV_PREFIX + "API_KEYS"),
            build_backend=backend,
            storage_connection_string=connection or None,
            storage_account=get("AZURE_STORAGE_ACCOUNT") or None,
            storage_container=get("AZURE_STORAGE_CONTAINER", "foundry-jobs"),
            table_prefix=get("TABLE_PREFIX", "foundry"),
            storage_connect_timeout_secs=_float(
                env, ENV_PREFIX + "STORAGE_CONNECT_TIMEOUT_SECS", 3.0, minimum=0.1
            ),
            storage_read_timeout_secs=_float(
                env, ENV_PREFIX + "STORAGE_READ_TIMEOUT_SECS", 3.0, minimum=0.1
            ),
            storage_retry_total=_int(env, ENV_PREFIX + "STORAGE_RETRY_TOTAL", 2, minimum=0),
            max_input_bytes=_int(env, ENV_PREFIX + "MAX_INPUT_BYTES", 524_288, minimum=1),
            min_ttl_hours=_int(env, ENV_PREFIX + "MIN_TTL_HOURS", 1, minimum=1),
            default_ttl_hours=_int(env, ENV_PREFIX + "DEFAULT_TTL_HOURS", 24, minimum=1),
            max_ttl_hours=_int(env, ENV_PREFIX + "MAX_TTL_HOURS", 72, minimum=1),
            queue_cap=_int(env, ENV_PREFIX + "QUEUE_CAP", 50, minimum=1),
            max_concurrent_builds=_int(env, ENV_PREFIX + "MAX_CONCURRENT_BUILDS", 3, minimum=1),
            build_timeout_secs=_int(env, ENV_PREFIX + "BUILD_TIMEOUT_SECS", 3600, minimum=1),
            image_build_timeout_secs=_int(
                env, ENV_PREFIX + "IMAGE_BUILD_TIMEOUT_SECS", 1800, minimum=1
            ),
            deploy_timeout_secs=_int(env, ENV_PREFIX + "DEPLOY_TIMEOUT_SECS", 600, minimum=1),
            poll_max_secs=_int(env, ENV_PREFIX + "POLL_MAX_SECS", 10, minimum=2),
            build_check_secs=_int(env, ENV_PREFIX + "BUILD_CHECK_SECS", 0, minimum=0),
            check_wait_secs=_int(env, ENV_PREFIX + "CHECK_WAIT_SECS", 20, minimum=0),
            preview_domain=get("PREVIEW_DOMAIN", "foundry.local"),
            signed_url_ttl_secs=_int(
                env, ENV_PREFIX + "AZURE_SIGNED_URL_TTL_SECS", 900, minimum=60
            ),
            sas_grant_margin_secs=_int(
                env, ENV_PREFIX + "SAS_GRANT_MARGIN_SECS", 1800, minimum=300
            ),
            proxy_base_url=get("BUILDER_PROXY_URL", "http://127.0.0.1:7072"),
            api_base_url=get("BUILDER_API_URL", "http://127.0.0.1:7071"),
            local_work_dir=get("LOCAL_WORK_DIR", ".foundry-local"),
            local_builder_command=get("LOCAL_BUILDER_COMMAND"),
            local_preview_host=get("LOCAL_PREVIEW_HOST", "127.0.0.1"),
            history_retention_days=_int(env, ENV_PREFIX + "HISTORY_RETENTION_DAYS", 30, minimum=1),
            unresolved_secrets=unresolved_secret_settings(env),
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
