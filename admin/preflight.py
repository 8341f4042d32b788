"""Preflight: what a deployment still lacks before it can build, as named checks with fixes.

    eval "$(azd env get-values)"
    python -m admin.preflight [--json]

Reads the azd environment: the ``FOUNDRY_SERVICE_AZURE_*`` settings the app runs with (Bicep
outputs), ``AZURE_FUNCTION_NAME`` and ``FOUNDRY_ADMIN_APP_URL``, and signs in like the Azure CLI
(``DefaultAzureCredential``). Every check is read-only and reports names and states, never a
setting's value. The checks, in order:

- ``settings``: the environment names a subscription, group, registry, storage and identity.
- ``registry``: the registry exists, its login server is the one the app uses, and its SKU and
  network settings let ACR Tasks build images (see ``tasks_available``).
- ``builder_image``: ``FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE`` is set, is not the ACA quickstart
  image, is in that registry, and its tag (or digest) is there.
- ``secret_references``: every Key Vault reference in the app's settings reports ``Resolved``.
- ``role_assignments``: the app's and the build jobs' identities hold every role
  ``infra/app/rbac.bicep`` grants (``REQUIRED_ROLES``; a test keeps the two in step).
- ``healthz``: ``GET /v1/healthz`` answers ``"status": "ok"``.

Exit codes: ``0`` every check ok, ``1`` a check failed, ``2`` the settings are incomplete, so
nothing in Azure could be checked.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from admin.arm_reader import ArmReader
from shared.config.azure import REQUIRED, AzureSettings
from shared.config.settings import is_key_vault_reference
from shared.errors import ConfigurationError

if TYPE_CHECKING:
    from azure.containerregistry import ContainerRegistryClient
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

P = "FOUNDRY_SERVICE_AZURE_"
BUILDER_IMAGE_VAR = P + "BUILDER_IMAGE"
FUNCTION_APP_VAR = "AZURE_FUNCTION_NAME"
APP_URL_VAR = "FOUNDRY_ADMIN_APP_URL"
#: The ACA sample image writes no stream.jsonl, so every build on it ends build_crashed.
QUICKSTART_IMAGE = "quickstart-jobs"
WEB_API = "2024-04-01"
IDENTITY_API = "2023-01-31"
AUTHORIZATION_API = "2022-04-01"
#: Settings that function.bicep makes Key Vault references (a test reads them from the Bicep).
#: The Anthropic key is the LLM proxy's (a Container App secret, proxy.bicep), not the app's.
KEY_VAULT_SETTINGS = ("FOUNDRY_SERVICE_API_KEYS",)
#: The SKUs of managed registries: ACR Tasks run on these only (Classic is not managed).
TASK_SKUS = ("Basic", "Standard", "Premium")
#: The custom role's display name in rbac.bicep, with its two interpolations as fields.
ORCHESTRATOR_ROLE_NAME = "Foundry build orchestrator ({subscription}/{resource_group})"
#: Longest wait for a TCP/TLS connection (azure-core's default is 300 s: a silent drop would
#: stall the operator for minutes per request).
CONNECT_TIMEOUT_SECS = 10.0
#: Role assignments can take this long to take effect after they are created.
PROPAGATION = timedelta(minutes=10)
HOOK = "azd hooks run postprovision"
LOAD_ENV = 'eval "$(azd env get-values)"'

EXIT_OK, EXIT_FAILED, EXIT_UNCONFIGURED = 0, 1, 2


@dataclass(frozen=True)
class CheckResult:
    """One check: ``detail`` says what was found, ``fix`` what to do when ``ok`` is false."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class PreflightReport:
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def exit_code(self) -> int:
        if self.ok:
            return EXIT_OK
        if any(c.name == "settings" and not c.ok for c in self.checks):
            return EXIT_UNCONFIGURED
        return EXIT_FAILED

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.to_dict() for check in self.checks]}


# -- the roles rbac.bicep grants ------------------------------------------------------------
class Identity(StrEnum):
    SERVICE = "service identity"  # the Function App runs as it
    BUILD = "build identity"  # build jobs and previews run as it


class Scope(StrEnum):
    RESOURCE_GROUP = "resource group"
    HOST_STORAGE = "host storage"
    JOB_STORAGE = "job storage"
    REGISTRY = "registry"
    KEY_VAULT = "key vault"
    APP_INSIGHTS = "Application Insights"


#: Stands for the custom role, whose GUID ARM derives at deploy time: it is found by its name.
ORCHESTRATOR = "orchestrator"
ROLE_NAMES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "db58b8e5-c6ad-4a2a-8342-4190687cbf4a": "Storage Blob Delegator",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "8311e382-0749-4cb8-b61a-304f252e45ec": "AcrPush",
    "c2f4ef07-c644-48eb-af81-4b1b4947fb11": "AcrDelete",
    "fb382eab-e894-4461-af04-94435c366c3f": "Container Registry Tasks Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    ORCHESTRATOR: "Foundry build orchestrator",
}
_BY_NAME = {name: guid for guid, name in ROLE_NAMES.items()}
#: (who, where, which role): exactly the managed identities' assignments in rbac.bicep.
REQUIRED_ROLES: tuple[tuple[Identity, Scope, str], ...] = tuple(
    (who, where, _BY_NAME[role])
    for who, where, role in (
        (Identity.SERVICE, Scope.HOST_STORAGE, "Storage Blob Data Owner"),
        (Identity.SERVICE, Scope.HOST_STORAGE, "Storage Queue Data Contributor"),
        (Identity.SERVICE, Scope.HOST_STORAGE, "Storage Table Data Contributor"),
        (Identity.SERVICE, Scope.JOB_STORAGE, "Storage Blob Data Contributor"),
        (Identity.SERVICE, Scope.JOB_STORAGE, "Storage Table Data Contributor"),
        (Identity.SERVICE, Scope.JOB_STORAGE, "Storage Blob Delegator"),
        (Identity.SERVICE, Scope.REGISTRY, "Container Registry Tasks Contributor"),
        (Identity.SERVICE, Scope.REGISTRY, "AcrPush"),
        (Identity.SERVICE, Scope.REGISTRY, "AcrDelete"),
        (Identity.SERVICE, Scope.KEY_VAULT, "Key Vault Secrets User"),
        (Identity.SERVICE, Scope.APP_INSIGHTS, "Monitoring Metrics Publisher"),
        (Identity.SERVICE, Scope.RESOURCE_GROUP, "Foundry build orchestrator"),
        (Identity.BUILD, Scope.REGISTRY, "AcrPull"),
    )
)


# -- pure rules -----------------------------------------------------------------------------
def tasks_available(
    sku: str,
    *,
    public_network_access: str = "",
    default_action: str = "",
    bypass_for_tasks: bool = False,
) -> tuple[bool, str]:
    """Whether the service's image builds (ACR Tasks quick runs, ``scheduleRun`` without an
    agent pool) can work on a registry with these facts, and why.

    - ACR Tasks exist on the managed SKUs only: Basic, Standard and Premium offer the same
      programmatic features, Tasks included; the retired Classic SKU is not managed.
    - A quick run executes on the shared agent pool, outside any network of the registry's. A
      network-restricted registry (public network access ``Disabled``, or network rules with
      default action ``Deny``, both Premium-only) refuses its push unless
      ``networkRuleBypassAllowedForTasks`` is true (denied by default since June 2025), or the run
      uses a dedicated agent pool, which this service never asks for.

    Not visible here: subscriptions where ACR Tasks are switched off (free trials among them,
    ``TasksOperationsNotAllowed``); the first ``az acr build`` of the postprovision hook meets it.
    """
    if sku not in TASK_SKUS:
        return False, f"SKU {sku or 'unknown'} has no ACR Tasks (managed SKUs only)"
    restricted = public_network_access == "Disabled" or default_action == "Deny"
    if restricted and not bypass_for_tasks:
        return False, (
            "the registry is network-restricted and networkRuleBypassAllowedForTasks is off: "
            "quick runs on the shared agent pool cannot push to it"
        )
    if restricted:
        return True, "ACR Tasks available (network-restricted; Tasks may bypass the rules)"
    return True, "ACR Tasks available"


@dataclass(frozen=True)
class ImageRef:
    host: str  # "" for Docker Hub's implicit registry
    repository: str
    tag: str
    digest: str


def parse_image(image: str) -> ImageRef:
    """Split ``host/repo:tag`` or ``host/repo@sha256:...`` the way Docker does: the first part
    is a registry host only when it has a dot or a port, or is ``localhost``."""
    rest, _, digest = image.partition("@")
    first, sep, remainder = rest.partition("/")
    host = first if sep and ("." in first or ":" in first or first == "localhost") else ""
    path = remainder if host else rest
    repository, tag = path, ""
    if ":" in path.rsplit("/", 1)[-1]:
        repository, tag = path.rsplit(":", 1)
    if not tag and not digest:
        tag = "latest"
    return ImageRef(host, repository, tag, digest)


def _value(raw: Any) -> str:
    """An SDK enum or a plain string, as its wire text."""
    return str(getattr(raw, "value", raw) or "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _problem(exc: AzureError, what: str) -> str:
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = exc.error.code if exc.error is not None and exc.error.code else exc.reason
        return f"could not {what}: HTTP {exc.status_code} {code}"
    return f"could not {what}: {_first_line(exc)}"


_SIGN_IN = "sign in as an operator of the subscription (az login; azd auth login), then run again"


def _failure(name: str, exc: AzureError, what: str, fix: str) -> CheckResult:
    """A failed check for an Azure SDK error: its HTTP status and ARM code, never a body."""
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    hint = fix
    if isinstance(exc, ClientAuthenticationError) and status is None:  # no token at all
        hint = _SIGN_IN
    elif status in (401, 403):
        hint = f"{_SIGN_IN} (HTTP {status}: the signed-in principal lacks read access)"
    elif isinstance(exc, ServiceRequestError | ServiceResponseError):
        hint = "check that this machine reaches Azure Resource Manager and the registry"
    return CheckResult(name, False, _problem(exc, what), hint)


@contextmanager
def _reported(results: list[CheckResult], name: str, what: str, fix: str) -> Iterator[None]:
    """Turn an Azure SDK failure inside the block into a failed check named ``name``."""
    try:
        yield
    except AzureError as exc:
        results.append(_failure(name, exc, what, fix))


# -- the checks -----------------------------------------------------------------------------
def load_settings(env: Mapping[str, str]) -> tuple[AzureSettings | None, CheckResult]:
    """The Azure settings, with an empty builder image allowed: it has a check of its own, and
    an empty one (the state before the postprovision hook) must not hide the other checks."""
    missing = [P + n for n in REQUIRED if n != "BUILDER_IMAGE" and not env.get(P + n, "").strip()]
    fix = f"{LOAD_ENV} in the project directory (azd writes these outputs), then run again"
    if missing:
        return None, CheckResult("settings", False, "not set: " + ", ".join(missing), fix)
    builder = env.get(BUILDER_IMAGE_VAR, "").strip()
    try:
        az = AzureSettings.from_env({**env, BUILDER_IMAGE_VAR: builder or "unset"})
    except ConfigurationError as exc:
        return None, CheckResult("settings", False, str(exc), fix)
    az = replace(az, builder_image=builder)
    detail = (
        f"subscription {az.subscription_id}, resource group {az.resource_group}, "
        f"registry {az.acr_name}"
    )
    return az, CheckResult("settings", True, detail)


def check_registry(client: ContainerRegistryManagementClient, az: AzureSettings) -> CheckResult:
    """The registry through azure-mgmt-containerregistry's ``registries.get``."""
    name = "registry"
    try:
        registry = client.registries.get(az.resource_group, az.acr_name)
    except ResourceNotFoundError:
        return CheckResult(
            name,
            False,
            f"registry {az.acr_name} does not exist in resource group {az.resource_group}",
            f"azd provision creates it (infra/app/build.bicep); or fix {P}ACR_NAME",
        )
    login = str(registry.login_server or "")
    sku = _value(registry.sku.name if registry.sku is not None else "")
    rules = registry.network_rule_set
    tasks_ok, tasks_why = tasks_available(
        sku,
        public_network_access=_value(registry.public_network_access),
        default_action=_value(rules.default_action if rules is not None else ""),
        bypass_for_tasks=bool(registry.network_rule_bypass_allowed_for_tasks),
    )
    problems: list[str] = []
    fixes: list[str] = []
    state = _value(registry.provisioning_state)
    if state and state != "Succeeded":
        problems.append(f"provisioning state {state}")
        fixes.append("azd provision, then run again")
    if login.lower() != az.registry_server.lower():
        problems.append(f"its login server is {login}, but the app uses {az.registry_server}")
        fixes.append(f"set {P}ACR_LOGIN_SERVER={login} in the app settings and the environment")
    if not tasks_ok:
        problems.append(tasks_why)
        fixes.append(
            f"az acr update -n {az.acr_name} --sku Basic"
            if sku not in TASK_SKUS
            else f"az acr update -n {az.acr_name} --public-network-access Enabled --default-action"
            " Allow; or let Tasks through: networkRuleBypassAllowedForTasks=true on the registry"
        )
    facts = f"{az.acr_name}: SKU {sku}, login server {login}; {tasks_why}"
    if problems:
        return CheckResult(name, False, f"{facts}; " + "; ".join(problems), "; ".join(fixes))
    return CheckResult(name, True, facts)


def check_builder_image(
    image: str, az: AzureSettings, open_registry: Callable[[], ContainerRegistryClient]
) -> CheckResult:
    name = "builder_image"
    if not image:
        return CheckResult(
            name,
            False,
            f"{BUILDER_IMAGE_VAR} is empty: the API answers 503 misconfigured",
            f"{HOOK} (builds runner/Dockerfile into the registry and sets it)",
        )
    if QUICKSTART_IMAGE in image:
        return CheckResult(
            name,
            False,
            f"{image} is the ACA quickstart image: it writes no stream.jsonl, so every build "
            "ends build_crashed",
            f"azd env set FOUNDRY_BUILDER_IMAGE '' then {HOOK}",
        )
    ref = parse_image(image)
    if ref.host.lower() != az.registry_server.lower():
        return CheckResult(
            name,
            False,
            f"{image} is not in {az.registry_server}: build jobs get pull credentials for that "
            "registry only",
            f"az acr import -n {az.acr_name} --source {image} --image "
            f"{ref.repository}:{ref.tag or 'imported'}, then azd env set FOUNDRY_BUILDER_IMAGE "
            f"to the imported image and {HOOK}",
        )
    where = f"{ref.repository}@{ref.digest}" if ref.digest else f"{ref.repository}:{ref.tag}"
    with open_registry() as registry:
        try:
            if ref.digest:
                found = registry.get_manifest_properties(ref.repository, ref.digest).digest
            else:
                found = registry.get_tag_properties(ref.repository, ref.tag).digest
        except ResourceNotFoundError as exc:
            return CheckResult(
                name,
                False,
                f"{where} is not in registry {az.acr_name} ({_registry_error(exc)})",
                f"{HOOK} (builds and pushes it again)",
            )
    return CheckResult(name, True, f"{where} is in registry {az.acr_name} ({found})")


def _registry_error(exc: HttpResponseError) -> str:
    """The registry's own error code (``{"errors": [{"code": ...}]}``, the Docker registry
    format, which azure-core's OData parsing does not read)."""
    try:
        body = json.loads(exc.response.text()) if exc.response is not None else {}
        return str(body["errors"][0]["code"])
    except (ValueError, LookupError, TypeError):
        return "not found"


def _reference_fix(status: str, az: AzureSettings, app: str) -> str:
    restart = f"az functionapp restart -g {az.resource_group} -n {app}"
    if status == "AccessToKeyVaultDenied":
        return (
            "the app's identity cannot read the vault yet (role assignments take up to 10 "
            f"minutes): wait, then {restart}, or {HOOK} (waits and restarts)"
        )
    if status in ("SecretNotFound", "SecretVersionNotFound", "VaultNotFound"):
        return "azd provision (writes both secrets to Key Vault again)"
    if status in ("MSINotEnabled", "UnauthorizedClient", "InvalidSyntax"):
        return "azd provision (function.bicep sets the references and keyVaultReferenceIdentity)"
    return f"{restart} (the platform fetches references again on a restart)"


def check_secret_references(
    arm: ArmReader, az: AzureSettings, app: str, site_path: str
) -> CheckResult:
    """Key Vault references through ARM's configreferences: names and states only. The literal
    ``@Microsoft.KeyVault(...)`` text (or ARM's ``source``) picks the Key Vault ones among
    other reference kinds (App Configuration)."""
    name = "secret_references"
    items = arm.list(f"{site_path}/config/configreferences/appsettings", WEB_API)
    states: dict[str, str] = {}
    for item in items:
        props = item.get("properties") or {}
        reference = str(props.get("reference") or "")
        if is_key_vault_reference(reference) or props.get("source") == "KeyVault":
            setting = str(item.get("id") or item.get("name") or "").rsplit("/", 1)[-1]
            states[setting] = str(props.get("status") or "Unknown")
    problems = [f"{s} is {v}" for s, v in sorted(states.items()) if v != "Resolved"]
    fixes = sorted({_reference_fix(v, az, app) for v in states.values() if v != "Resolved"})
    absent = [s for s in KEY_VAULT_SETTINGS if s not in states]
    if absent:
        problems.append("not Key Vault references: " + ", ".join(absent))
        fixes.append("azd provision (function.bicep makes them references)")
    if problems:
        return CheckResult(name, False, "; ".join(problems), "; ".join(fixes))
    return CheckResult(name, True, f"{len(states)} Key Vault references resolved")


@dataclass(frozen=True)
class _Scopes:
    """Where each required role must be assigned, as ARM scope strings."""

    resource_group: str  # /subscriptions/<id>/resourceGroups/<name>
    names: Mapping[Scope, tuple[str, str | None]]  # scope -> (provider type, name or any)
    job_storage: str

    def matches(self, scope: Scope, assigned: str) -> bool:
        assigned, group = assigned.lower().rstrip("/"), self.resource_group.lower()
        if scope is Scope.RESOURCE_GROUP:
            return assigned == group
        prefix = group + "/providers/"
        if not assigned.startswith(prefix):
            return False
        parts = assigned[len(prefix) :].split("/")
        provider, wanted = self.names[scope]
        if len(parts) != 3 or "/".join(parts[:2]) != provider.lower():
            return False
        if wanted is not None:
            return parts[2] == wanted.lower()
        # Host storage when the site does not name it: any account but the job account.
        return scope is not Scope.HOST_STORAGE or parts[2] != self.job_storage.lower()

    def exact(self, scope: Scope) -> str | None:
        if scope is Scope.RESOURCE_GROUP:
            return self.resource_group
        provider, wanted = self.names[scope]
        return f"{self.resource_group}/providers/{provider}/{wanted}" if wanted else None

    def describe(self, scope: Scope) -> str:
        wanted = None if scope is Scope.RESOURCE_GROUP else self.names[scope][1]
        return f"{scope} {wanted}" if wanted else str(scope)


def _host_storage(site: Mapping[str, Any]) -> str | None:
    """The host storage account, from the Flex Consumption deployment container URL."""
    config = (site.get("properties") or {}).get("functionAppConfig") or {}
    url = str(((config.get("deployment") or {}).get("storage") or {}).get("value") or "")
    host = urlsplit(url).hostname or ""
    return host.split(".", 1)[0] or None


def _service_principal(site: Mapping[str, Any]) -> str | None:
    """The object id of the identity the app resolves Key Vault references and runs as."""
    identity = site.get("identity") or {}
    users = {k.lower(): v for k, v in (identity.get("userAssignedIdentities") or {}).items()}
    chosen = str((site.get("properties") or {}).get("keyVaultReferenceIdentity") or "").lower()
    if chosen in users:
        return str(users[chosen].get("principalId") or "") or None
    if len(users) == 1 and chosen != "systemassigned":
        return str(next(iter(users.values())).get("principalId") or "") or None
    return str(identity.get("principalId") or "") or None


def _created(assignment: Mapping[str, Any]) -> datetime | None:
    raw = str((assignment.get("properties") or {}).get("createdOn") or "")
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def check_role_assignments(
    arm: ArmReader, az: AzureSettings, site: Mapping[str, Any], now: datetime
) -> CheckResult:
    """Each required (identity, scope, role) against ARM's role assignments for the identity's
    principal (``$filter=principalId eq``: assignments at, above and below the group)."""
    name = "role_assignments"
    group = f"/subscriptions/{az.subscription_id}/resourceGroups/{az.resource_group}"
    scopes = _Scopes(
        resource_group=group,
        names={
            Scope.HOST_STORAGE: ("Microsoft.Storage/storageAccounts", _host_storage(site)),
            Scope.JOB_STORAGE: ("Microsoft.Storage/storageAccounts", az.storage_account),
            Scope.REGISTRY: ("Microsoft.ContainerRegistry/registries", az.acr_name),
            Scope.KEY_VAULT: ("Microsoft.KeyVault/vaults", None),
            Scope.APP_INSIGHTS: ("Microsoft.Insights/components", None),
        },
        job_storage=az.storage_account,
    )
    build = arm.get(az.identity_resource_id, IDENTITY_API)
    principals = {
        Identity.SERVICE: _service_principal(site),
        Identity.BUILD: str(((build or {}).get("properties") or {}).get("principalId") or "")
        or None,
    }
    role_name = ORCHESTRATOR_ROLE_NAME.format(
        subscription=az.subscription_id, resource_group=az.resource_group
    )
    definitions = arm.list(
        f"{group}/providers/Microsoft.Authorization/roleDefinitions",
        AUTHORIZATION_API,
        odata_filter=f"roleName eq '{role_name}'",
    )
    orchestrator = str(definitions[0].get("name") or "").lower() if definitions else ""
    missing: list[str] = []
    recent: list[str] = []
    commands: list[str] = []
    counts: list[str] = []
    for who, principal in principals.items():
        wanted = [(where, role) for w, where, role in REQUIRED_ROLES if w is who]
        if principal is None:
            missing.append(f"{who} not found")
            continue
        assignments = arm.list(
            f"{group}/providers/Microsoft.Authorization/roleAssignments",
            AUTHORIZATION_API,
            odata_filter=f"principalId eq '{principal}'",
        )
        held = 0
        for where, role in wanted:
            guid = orchestrator if role == ORCHESTRATOR else role
            label = f"{ROLE_NAMES[role]} on {scopes.describe(where)} ({who})"
            if role == ORCHESTRATOR and not orchestrator:
                missing.append(f"custom role '{role_name}' does not exist")
                continue
            found = [
                a
                for a in assignments
                if str((a.get("properties") or {}).get("roleDefinitionId") or "")
                .lower()
                .endswith("/" + guid)
                and scopes.matches(where, str((a.get("properties") or {}).get("scope") or ""))
            ]
            if not found:
                missing.append(label)
                exact = scopes.exact(where)
                if exact and role != ORCHESTRATOR:
                    commands.append(
                        f"az role assignment create --assignee-object-id {principal} "
                        f"--assignee-principal-type ServicePrincipal --role {role} --scope {exact}"
                    )
                continue
            held += 1
            created = [c for c in map(_created, found) if c is not None]
            if created and now - max(created) < PROPAGATION:
                recent.append(label)
        counts.append(f"{who}: {held} of {len(wanted)} roles")
    detail = "; ".join(counts)
    if recent:
        detail += (
            f"; created in the last {int(PROPAGATION.total_seconds() // 60)} minutes, may not be "
            "in effect yet: " + ", ".join(recent)
        )
    if missing:
        fix = "azd provision (infra/app/rbac.bicep creates them)"
        if commands:
            fix += "; or, for one: " + commands[0]
        return CheckResult(name, False, f"{detail}; missing: " + ", ".join(missing), fix)
    return CheckResult(name, True, detail)


def check_healthz(app_url: str, verify: ssl.SSLContext | bool, timeout: float) -> CheckResult:
    name = "healthz"
    if not app_url:
        return CheckResult(name, False, f"{APP_URL_VAR} is not set", f"{LOAD_ENV}, then run again")
    url = app_url.rstrip("/") + "/v1/healthz"
    deploy = "azd deploy (and check the app is running: az functionapp show --query state)"
    try:
        response = httpx.get(url, timeout=timeout, verify=verify)
    except httpx.HTTPError as exc:
        return CheckResult(name, False, f"{url} did not answer ({type(exc).__name__})", deploy)
    try:
        body = response.json()
    except ValueError:
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    if response.status_code != 200 or status is None:
        return CheckResult(name, False, f"{url} answered HTTP {response.status_code}", deploy)
    if status != "ok":
        reasons = [str(r) for r in body.get("reasons") or []]
        return CheckResult(
            name,
            False,
            f"{status}: " + "; ".join(reasons),
            "fix what the reasons name (the other checks say how), then restart the app",
        )
    return CheckResult(name, True, f"{url} answered ok")


# -- composition ----------------------------------------------------------------------------
def run_preflight(
    env: Mapping[str, str] | None = None,
    *,
    credential: TokenCredential | None = None,
    now: datetime | None = None,
) -> PreflightReport:
    """Every check against the deployment ``env`` names (default: ``os.environ``). Never raises
    for what Azure answers: a failed read is a failed check, with its HTTP status and ARM code."""
    source: Mapping[str, str] = os.environ if env is None else env
    az, settings = load_settings(source)
    if az is None:
        return PreflightReport((settings,))
    owned = credential is None
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=az.mi_client_id)
    try:
        return PreflightReport(
            (settings, *_azure_checks(source, az, credential, now or datetime.now(UTC)))
        )
    finally:
        if owned:
            close = getattr(credential, "close", None)
            if close is not None:
                close()


def _azure_checks(
    env: Mapping[str, str], az: AzureSettings, credential: TokenCredential, now: datetime
) -> list[CheckResult]:
    from azure.containerregistry import ContainerRegistryClient
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    transport: dict[str, Any] = {
        "read_timeout": az.http_timeout_secs,
        "connection_timeout": CONNECT_TIMEOUT_SECS,
    }
    if az.ca_bundle:
        transport["connection_verify"] = az.ca_bundle
    results: list[CheckResult] = []
    arm = ArmReader(credential, arm_url=az.arm_url, **transport)
    management = ContainerRegistryManagementClient(
        credential, az.subscription_id, base_url=az.arm_url, **transport
    )

    def open_registry() -> ContainerRegistryClient:
        return ContainerRegistryClient(
            f"https://{az.registry_server}",
            credential,
            audience="https://management.azure.com",
            **transport,
        )

    try:
        with _reported(results, "registry", "read the registry", "check the registry's name"):
            results.append(check_registry(management, az))
        with _reported(
            results, "builder_image", "read the registry's tags", f"{HOOK}, then run again"
        ):
            results.append(check_builder_image(az.builder_image, az, open_registry))
        results.extend(_site_checks(env, az, arm, now))
    finally:
        management.close()
        arm.close()
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=az.ca_bundle) if az.ca_bundle else True
    )
    results.append(check_healthz(env.get(APP_URL_VAR, "").strip(), verify, az.http_timeout_secs))
    return results


def _site_checks(
    env: Mapping[str, str], az: AzureSettings, arm: ArmReader, now: datetime
) -> list[CheckResult]:
    """The checks that read the Function App: its Key Vault references and its identity."""
    names = ("secret_references", "role_assignments")
    app = env.get(FUNCTION_APP_VAR, "").strip()
    if not app:
        fix = f"{LOAD_ENV}, then run again"
        return [CheckResult(n, False, f"{FUNCTION_APP_VAR} is not set", fix) for n in names]
    site_path = (
        f"/subscriptions/{az.subscription_id}/resourceGroups/{az.resource_group}"
        f"/providers/Microsoft.Web/sites/{app}"
    )
    try:
        site = arm.get(site_path, WEB_API)
    except AzureError as exc:
        return [_failure(n, exc, "read the Function App", "azd provision") for n in names]
    if site is None:
        detail = f"Function App {app} does not exist in resource group {az.resource_group}"
        fix = f"azd provision creates it; or fix {FUNCTION_APP_VAR}"
        return [CheckResult(n, False, detail, fix) for n in names]
    results: list[CheckResult] = []
    with _reported(results, names[0], "read the Key Vault reference states", "azd provision"):
        results.append(check_secret_references(arm, az, app, site_path))
    with _reported(results, names[1], "read role assignments", "azd provision"):
        results.append(check_role_assignments(arm, az, site, now))
    return results


def render(report: PreflightReport, out: TextIO) -> None:
    """One line per check, ✓ or ✗ (or OK/FAIL where the terminal cannot print them)."""
    marks = ("✓", "✗")
    try:
        "".join(marks).encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        marks = ("OK  ", "FAIL")
    for check in report.checks:
        print(f"{marks[0] if check.ok else marks[1]} {check.name}: {check.detail}", file=out)
        if not check.ok and check.fix:
            print(f"    fix: {check.fix}", file=out)
    failed = sum(not c.ok for c in report.checks)
    summary = "all checks passed" if not failed else f"{failed} of {len(report.checks)} failed"
    print(summary, file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m admin.preflight",
        description="Check what a deployment still lacks: registry, builder image, Key Vault "
        "references, role assignments, health.",
        epilog=f"Reads the azd environment ({LOAD_ENV}): {P}*, {FUNCTION_APP_VAR}, "
        f"{APP_URL_VAR}. Exit codes: {EXIT_OK} all ok, {EXIT_FAILED} a check failed, "
        f"{EXIT_UNCONFIGURED} settings incomplete.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(
    argv: list[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    credential: TokenCredential | None = None,
    out: TextIO = sys.stdout,
) -> int:
    args = build_parser().parse_args(argv)
    report = run_preflight(env, credential=credential)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1), file=out)
    else:
        render(report, out)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
