"""admin/preflight.py through the real SDK clients (azure-mgmt-containerregistry,
azure-containerregistry, azure-core's pipeline, httpx) against tests/fake_azure.py on HTTPS
loopback. The green deployment below is built from infra/app/rbac.bicep, not from the code's own
table, so a role the code forgets or invents fails here."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from admin import preflight
from admin.preflight import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNCONFIGURED,
    KEY_VAULT_SETTINGS,
    ORCHESTRATOR,
    ORCHESTRATOR_ROLE_NAME,
    REQUIRED_ROLES,
    ROLE_NAMES,
    Identity,
    PreflightReport,
    Scope,
    main,
    parse_image,
    run_preflight,
)
from shared.config.settings import SECRET_SETTINGS
from tests.azurite import free_port
from tests.fake_azure import FakeAzure, FakeCredential
from tests.infra import bicep

SUB, RG = "00000000-0000-0000-0000-000000000001", "rg-foundry-test"
GROUP = f"/subscriptions/{SUB}/resourceGroups/{RG}"
ACR, APP, TAG = "crfoundry", "func-foundry-t1", "0123abcd4567"
JOB_STORAGE, HOST_STORAGE, VAULT = "stjobst1", "sthostt1", "kv-foundry-t1"
SVC_ID = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-foundry-svc-t1"
BUILD_ID = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-foundry-build-t1"
SVC_PRINCIPAL, BUILD_PRINCIPAL = "11111111-aaaa-4aaa-8aaa-000000000001", "22222222-bbbb-4bbb-8bbb-2"
ORCHESTRATOR_GUID = "9f6c2f0e-1b1a-5c3e-8d7e-3a4b5c6d7e8f"
SITE = f"{GROUP}/providers/Microsoft.Web/sites/{APP}"
#: The API versions on the wire: the pinned SDKs' own, and the ones preflight.py names.
REGISTRY_API, ACR_DATA_API = "2025-11-01", "2021-07-01"

RBAC = bicep.load(bicep.INFRA / "app" / "rbac.bicep")
FUNCTION_BICEP = (bicep.INFRA / "app" / "function.bicep").read_text()
BICEP_PRINCIPALS = {
    "serviceIdentityPrincipalId": Identity.SERVICE,
    "buildIdentityPrincipalId": Identity.BUILD,
}
BICEP_SCOPES = {
    None: Scope.RESOURCE_GROUP,
    "hostStorage": Scope.HOST_STORAGE,
    "jobStorage": Scope.JOB_STORAGE,
    "registry": Scope.REGISTRY,
    "keyVault": Scope.KEY_VAULT,
    "appInsights": Scope.APP_INSIGHTS,
}
SCOPE_IDS = {
    Scope.RESOURCE_GROUP: GROUP,
    Scope.HOST_STORAGE: f"{GROUP}/providers/Microsoft.Storage/storageAccounts/{HOST_STORAGE}",
    Scope.JOB_STORAGE: f"{GROUP}/providers/Microsoft.Storage/storageAccounts/{JOB_STORAGE}",
    Scope.REGISTRY: f"{GROUP}/providers/Microsoft.ContainerRegistry/registries/{ACR}",
    Scope.KEY_VAULT: f"{GROUP}/providers/Microsoft.KeyVault/vaults/{VAULT}",
    Scope.APP_INSIGHTS: f"{GROUP}/providers/Microsoft.Insights/components/appi-foundry-t1",
}


# -- what the Bicep grants, read from the Bicep -----------------------------------------------
def _role_guid(symbol: str) -> str:
    if symbol == "orchestratorRole.id":
        return ORCHESTRATOR
    return RBAC.variables[symbol].strip("'")


def bicep_roles() -> set[tuple[Identity, Scope, str]]:
    """Every (identity, scope, role) rbac.bicep assigns to a managed identity (the deploying
    principal's conditional troubleshooting access is not the service's concern)."""
    granted: set[tuple[Identity, Scope, str]] = set()
    for symbol, resource in RBAC.resources.items():
        if not resource.type.startswith("Microsoft.Authorization/roleAssignments@"):
            continue
        props = resource.body["properties"]
        if props["principalId"] not in BICEP_PRINCIPALS:
            continue
        who, where = (
            BICEP_PRINCIPALS[props["principalId"]],
            BICEP_SCOPES[resource.body.get("scope")],
        )
        if resource.looped:
            loop = re.search(
                rf"resource {symbol} '[^']+' = \[for role in \[(.*?)\]", RBAC.text, re.S
            )
            roles = re.findall(r"\w+", loop[1])
        else:
            roles = re.findall(r"(\w+(?:\.id)?)\)?$", props["roleDefinitionId"])
        granted |= {(who, where, _role_guid(role)) for role in roles}
    return granted


def test_required_roles_are_exactly_the_ones_rbac_bicep_grants() -> None:
    assert len(bicep_roles()) >= 13
    assert set(REQUIRED_ROLES) == bicep_roles()
    assert len(REQUIRED_ROLES) == len(set(REQUIRED_ROLES))


def test_role_names_are_the_ones_the_bicep_comments_give() -> None:
    declared = dict(re.findall(r"^var \w+ = '([0-9a-f-]{36})' // (.+)$", RBAC.text, re.M))
    assert declared and set(declared) == set(ROLE_NAMES) - {ORCHESTRATOR}
    for guid, comment in declared.items():
        assert comment.startswith(ROLE_NAMES[guid]), (guid, comment)


def test_orchestrator_role_name_is_the_bicep_one() -> None:
    display = RBAC.resources["orchestratorRole"].body["properties"]["roleName"].strip("'")
    as_format = display.replace("${subscription().subscriptionId}", "{subscription}").replace(
        "${resourceGroup().name}", "{resource_group}"
    )
    assert as_format == ORCHESTRATOR_ROLE_NAME


def test_key_vault_settings_are_the_references_function_bicep_writes() -> None:
    referenced = set(re.findall(r"^\s+(\w+): '\$\{kvRef\}", FUNCTION_BICEP, re.M))
    assert referenced == set(KEY_VAULT_SETTINGS)
    assert set(KEY_VAULT_SETTINGS) <= set(SECRET_SETTINGS)


# -- a deployment in the fake ------------------------------------------------------------------
def orchestrator_role_name() -> str:
    display = RBAC.resources["orchestratorRole"].body["properties"]["roleName"].strip("'")
    return display.replace("${subscription().subscriptionId}", SUB).replace(
        "${resourceGroup().name}", RG
    )


def assignment(principal: str, scope: str, role: str, created: str = "2026-01-05T10:00:00Z"):
    guid = ORCHESTRATOR_GUID if role == ORCHESTRATOR else role
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{len(scope)}-{guid}",
        "name": guid,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{guid}",
            "principalId": principal,
            "principalType": "ServicePrincipal",
            "scope": scope,
            "createdOn": created,
        },
    }


def reference(setting: str, status: str = "Resolved") -> dict[str, Any]:
    return {
        "id": f"{SITE}/config/configreferences/appsettings/{setting}",
        "name": setting,
        "type": "Microsoft.Web/sites/config/configreferences",
        "properties": {
            "reference": f"@Microsoft.KeyVault(VaultName={VAULT};SecretName=s-{setting.lower()})",
            "status": status,
            "vaultName": VAULT,
            "secretName": f"s-{setting.lower()}",
            "identityType": "UserAssigned",
            "source": "KeyVault",
        },
    }


def deploy(fake: FakeAzure) -> None:
    """What a finished `azd up` leaves: every resource, role and reference in place."""
    fake.registries[ACR] = {
        "id": SCOPE_IDS[Scope.REGISTRY],
        "name": ACR,
        "type": "Microsoft.ContainerRegistry/registries",
        "location": "eastus2",
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": {
            "loginServer": fake.host,
            "provisioningState": "Succeeded",
            "adminUserEnabled": False,
            "publicNetworkAccess": "Enabled",
            "networkRuleBypassOptions": "AzureServices",
            "networkRuleBypassAllowedForTasks": False,
        },
    }
    fake.push_image("foundry-builder", TAG)
    fake.sites[APP] = {
        "id": SITE,
        "name": APP,
        "type": "Microsoft.Web/sites",
        "identity": {
            "type": "UserAssigned",
            # ARM answers resource ids in its own casing: matched case-insensitively.
            "userAssignedIdentities": {
                SVC_ID.replace("resourceGroups", "resourcegroups"): {
                    "principalId": SVC_PRINCIPAL,
                    "clientId": "c1",
                }
            },
        },
        "properties": {
            "keyVaultReferenceIdentity": SVC_ID,
            "functionAppConfig": {
                "deployment": {
                    "storage": {
                        "type": "blobContainer",
                        "value": f"https://{HOST_STORAGE}.blob.core.windows.net/app-package",
                    }
                }
            },
        },
    }
    app_config = reference("FOUNDRY_SERVICE_PREVIEW_DOMAIN", "OtherReasons")
    app_config["properties"]["reference"] = "@Microsoft.AppConfiguration(Endpoint=https://x;Key=y)"
    app_config["properties"]["source"] = "AppConfiguration"
    fake.config_references[APP] = [*(reference(s) for s in KEY_VAULT_SETTINGS), app_config]
    fake.identities["id-foundry-build-t1"] = {
        "id": BUILD_ID,
        "name": "id-foundry-build-t1",
        "properties": {"principalId": BUILD_PRINCIPAL, "clientId": "c2"},
    }
    principals = {Identity.SERVICE: SVC_PRINCIPAL, Identity.BUILD: BUILD_PRINCIPAL}
    fake.role_assignments = [
        assignment(principals[who], SCOPE_IDS[where], role) for who, where, role in bicep_roles()
    ]
    # Someone else's roles, and the service identity's elsewhere: neither counts.
    fake.role_assignments.append(
        assignment("33333333-0000-0000-0000-000000000003", SCOPE_IDS[Scope.REGISTRY], "x")
    )
    fake.role_definitions = [
        {
            "id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{ORCHESTRATOR_GUID}",
            "name": ORCHESTRATOR_GUID,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {"roleName": orchestrator_role_name(), "type": "CustomRole"},
        }
    ]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeAzure]:
    server = FakeAzure(tmp_path)
    deploy(server)
    yield server
    server.close()


def environment(fake: FakeAzure, **overrides: str) -> dict[str, str]:
    """The azd environment after `azd up`, pointed at the fake."""
    p = "FOUNDRY_SERVICE_AZURE_"
    env = {
        p + "SUBSCRIPTION_ID": SUB,
        p + "RESOURCE_GROUP": RG,
        p + "LOCATION": "eastus2",
        p + "STORAGE_ACCOUNT": JOB_STORAGE,
        p + "ACR_NAME": ACR,
        p + "ACA_ENVIRONMENT": f"{GROUP}/providers/Microsoft.App/managedEnvironments/cae",
        p + "BUILDER_IMAGE": f"{fake.host}/foundry-builder:{TAG}",
        p + "IDENTITY_RESOURCE_ID": BUILD_ID,
        p + "ARM_URL": fake.url,
        p + "ACR_LOGIN_SERVER": fake.host,
        p + "CA_BUNDLE": str(fake.cert),
        p + "HTTP_TIMEOUT_SECS": "5",
        "AZURE_FUNCTION_NAME": APP,
        "FOUNDRY_ADMIN_APP_URL": fake.url,
    }
    env.update(
        {k if k.startswith(("AZURE_", "FOUNDRY_")) else p + k: v for k, v in overrides.items()}
    )
    return env


def check(fake: FakeAzure, name: str, **overrides: str) -> preflight.CheckResult:
    report = run_preflight(environment(fake, **overrides), credential=FakeCredential())
    return next(c for c in report.checks if c.name == name)


NAMES = [
    "settings",
    "registry",
    "builder_image",
    "secret_references",
    "role_assignments",
    "healthz",
]


# -- all green, and what went over the wire ----------------------------------------------------
def test_a_finished_deployment_passes_every_check(fake) -> None:
    report = run_preflight(environment(fake), credential=FakeCredential())
    assert [c.name for c in report.checks] == NAMES
    assert report.ok and report.exit_code == EXIT_OK, report.to_dict()
    details = {c.name: c.detail for c in report.checks}
    assert details["registry"].startswith(f"{ACR}: SKU Basic, login server {fake.host}")
    assert f"foundry-builder:{TAG} is in registry {ACR} (sha256:" in details["builder_image"]
    assert report.checks[3].detail == "1 Key Vault references resolved"
    assert (
        details["role_assignments"]
        == "service identity: 12 of 12 roles; build identity: 1 of 1 roles"
    )


def test_the_wire_requests_are_reads_with_the_right_paths_and_api_versions(fake) -> None:
    run_preflight(environment(fake), credential=FakeCredential())
    # Read-only: GETs, plus the ACR data plane's token exchange.
    writes = [(r.method, r.path) for r in fake.requests if r.method != "GET"]
    assert writes and {path for _, path in writes} <= {"/oauth2/exchange", "/oauth2/token"}

    (registry,) = fake.calls("GET", r"/registries/crfoundry$")
    assert registry.path == SCOPE_IDS[Scope.REGISTRY] and registry.api_version == REGISTRY_API
    assert registry.headers["authorization"] == "Bearer fake-aad-token"
    tags = fake.calls("GET", rf"^/acr/v1/foundry-builder/_tags/{TAG}$")
    assert [t.api_version for t in tags] == [ACR_DATA_API, ACR_DATA_API]  # challenge, then real
    assert tags[-1].headers["authorization"] == "Bearer acr-access"

    (site,) = fake.calls("GET", rf"/sites/{APP}$")
    (refs,) = fake.calls("GET", rf"/sites/{APP}/config/configreferences/appsettings$")
    assert site.path == SITE and site.api_version == refs.api_version == preflight.WEB_API
    assert site.headers["authorization"] == "Bearer fake-aad-token"
    (build,) = fake.calls("GET", r"/userAssignedIdentities/id-foundry-build-t1$")
    assert build.path == BUILD_ID and build.api_version == "2023-01-31"

    lists = fake.calls("GET", r"/providers/Microsoft\.Authorization/roleAssignments$")
    assert {r.path for r in lists} == {f"{GROUP}/providers/Microsoft.Authorization/roleAssignments"}
    assert {r.api_version for r in lists} == {"2022-04-01"}
    assert sorted(r.query["$filter"][0] for r in lists) == [
        f"principalId eq '{SVC_PRINCIPAL}'",
        f"principalId eq '{BUILD_PRINCIPAL}'",
    ]
    (definitions,) = fake.calls("GET", r"/providers/Microsoft\.Authorization/roleDefinitions$")
    assert definitions.path == f"{GROUP}/providers/Microsoft.Authorization/roleDefinitions"
    assert definitions.query["$filter"] == [f"roleName eq '{orchestrator_role_name()}'"]
    assert definitions.api_version == "2022-04-01"
    assert len(fake.calls("GET", r"^/v1/healthz$")) == 1


def test_json_and_human_output_and_exit_codes(fake) -> None:
    out = io.StringIO()
    assert main(["--json"], env=environment(fake), credential=FakeCredential(), out=out) == 0
    report = json.loads(out.getvalue())
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == NAMES
    assert set(report["checks"][0]) == {"name", "ok", "detail", "fix"}

    fake.registries.pop(ACR)
    out = io.StringIO()
    env = environment(fake)
    assert main([], env=env, credential=FakeCredential(), out=out) == EXIT_FAILED
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("✓ settings: ")
    assert lines[1].startswith("✗ registry: registry crfoundry does not exist")
    assert lines[2].startswith("    fix: azd provision creates it")
    assert lines[-1] == "1 of 6 failed"


def test_without_a_terminal_that_prints_marks_it_says_ok_and_fail(fake) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    report = run_preflight(environment(fake), credential=FakeCredential())
    preflight.render(report, out)
    out.seek(0)
    assert out.read().splitlines()[0].startswith("OK   settings: ")


def test_module_entry_point_lists_the_environment_it_reads() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "admin.preflight", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=bicep.ROOT,
    )
    for name in ("FOUNDRY_SERVICE_AZURE_*", "AZURE_FUNCTION_NAME", "FOUNDRY_ADMIN_APP_URL"):
        assert name in result.stdout
    assert "--json" in result.stdout


# -- settings ---------------------------------------------------------------------------------
def test_incomplete_settings_check_nothing_in_azure(fake) -> None:
    env = environment(fake)
    del env["FOUNDRY_SERVICE_AZURE_ACR_NAME"]
    env["FOUNDRY_SERVICE_AZURE_RESOURCE_GROUP"] = " "
    report = run_preflight(env, credential=FakeCredential())
    (settings,) = report.checks
    assert not settings.ok and report.exit_code == EXIT_UNCONFIGURED
    assert settings.detail == (
        "not set: FOUNDRY_SERVICE_AZURE_RESOURCE_GROUP, FOUNDRY_SERVICE_AZURE_ACR_NAME"
    )
    assert 'eval "$(azd env get-values)"' in settings.fix
    assert fake.requests == []


def test_a_token_failure_is_a_sign_in_hint_not_a_traceback(fake) -> None:
    class NoLogin(FakeCredential):
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

        def get_token_info(self, *scopes, options=None):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    report = run_preflight(environment(fake), credential=NoLogin())
    failed = {c.name: c for c in report.checks if not c.ok}
    assert set(failed) == {"registry", "builder_image", "secret_references", "role_assignments"}
    for result in failed.values():
        assert "failed to retrieve a token" in result.detail
        assert result.fix.startswith("sign in as an operator")
    assert report.exit_code == EXIT_FAILED


# -- registry -----------------------------------------------------------------------------------
def test_a_missing_registry(fake) -> None:
    fake.registries.pop(ACR)
    result = check(fake, "registry")
    assert not result.ok
    assert result.detail == f"registry {ACR} does not exist in resource group {RG}"
    assert "azd provision" in result.fix and "FOUNDRY_SERVICE_AZURE_ACR_NAME" in result.fix


@pytest.mark.parametrize(
    ("sku", "properties", "ok", "why"),
    [
        ("Basic", {}, True, "ACR Tasks available"),
        ("Standard", {}, True, "ACR Tasks available"),
        ("Premium", {}, True, "ACR Tasks available"),
        ("Classic", {}, False, "SKU Classic has no ACR Tasks (managed SKUs only)"),
        ("Premium", {"publicNetworkAccess": "Disabled"}, False, "network-restricted"),
        (
            "Premium",
            {"networkRuleSet": {"defaultAction": "Deny", "ipRules": []}},
            False,
            "network-restricted",
        ),
        (
            "Premium",
            {"publicNetworkAccess": "Disabled", "networkRuleBypassAllowedForTasks": True},
            True,
            "Tasks may bypass the rules",
        ),
    ],
)
def test_the_sku_and_network_rule_for_acr_tasks(fake, sku, properties, ok, why) -> None:
    fake.registries[ACR]["sku"] = {"name": sku, "tier": sku}
    fake.registries[ACR]["properties"].update(properties)
    result = check(fake, "registry")
    assert result.ok is ok, result
    assert why in result.detail
    if not ok:
        expected = "--sku Basic" if sku == "Classic" else "networkRuleBypassAllowedForTasks=true"
        assert expected in result.fix


def test_a_login_server_other_than_the_apps(fake) -> None:
    fake.registries[ACR]["properties"]["loginServer"] = f"{ACR}.azurecr.io"
    result = check(fake, "registry")
    assert not result.ok
    assert f"its login server is {ACR}.azurecr.io, but the app uses {fake.host}" in result.detail
    assert f"FOUNDRY_SERVICE_AZURE_ACR_LOGIN_SERVER={ACR}.azurecr.io" in result.fix


def test_a_registry_still_provisioning(fake) -> None:
    fake.registries[ACR]["properties"]["provisioningState"] = "Updating"
    result = check(fake, "registry")
    assert not result.ok and "provisioning state Updating" in result.detail


# -- builder image ---------------------------------------------------------------------------
def test_an_empty_builder_image_fails_alone(fake) -> None:
    report = run_preflight(environment(fake, BUILDER_IMAGE=""), credential=FakeCredential())
    failed = [c for c in report.checks if not c.ok]
    assert [c.name for c in failed] == ["builder_image"]
    assert "FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE is empty" in failed[0].detail
    assert failed[0].fix.startswith("azd hooks run postprovision")
    assert not fake.calls("GET", r"^/acr/v1/")


def test_the_quickstart_image_is_refused(fake) -> None:
    image = "mcr.microsoft.com/k8se/quickstart-jobs:latest"
    result = check(fake, "builder_image", BUILDER_IMAGE=image)
    assert not result.ok and "writes no stream.jsonl" in result.detail
    assert "FOUNDRY_BUILDER_IMAGE ''" in result.fix
    assert not fake.calls("GET", r"^/acr/v1/")


def test_an_image_in_another_registry_cannot_be_pulled_by_build_jobs(fake) -> None:
    result = check(fake, "builder_image", BUILDER_IMAGE="ghcr.io/acme/builder:2")
    assert not result.ok
    assert f"is not in {fake.host}: build jobs get pull credentials" in result.detail
    assert f"az acr import -n {ACR} --source ghcr.io/acme/builder:2" in result.fix


@pytest.mark.parametrize(
    ("image", "code"),
    [("foundry-builder:ffff00000000", "TAG_UNKNOWN"), ("other-builder:1", "NAME_UNKNOWN")],
)
def test_a_tag_or_repository_not_in_the_registry(fake, image, code) -> None:
    result = check(fake, "builder_image", BUILDER_IMAGE=f"{fake.host}/{image}")
    assert not result.ok
    assert result.detail == f"{image} is not in registry {ACR} ({code})"
    assert result.fix.startswith("azd hooks run postprovision")


def test_an_image_pinned_by_digest(fake) -> None:
    digest = fake.tags["foundry-builder"][TAG]
    result = check(fake, "builder_image", BUILDER_IMAGE=f"{fake.host}/foundry-builder@{digest}")
    assert (
        result.ok and result.detail == f"foundry-builder@{digest} is in registry {ACR} ({digest})"
    )
    hexdigits = digest.removeprefix("sha256:")
    assert fake.calls("GET", rf"^/acr/v1/foundry-builder/_manifests/sha256(:|%3A){hexdigits}$")
    gone = "sha256:" + "0" * 64
    result = check(fake, "builder_image", BUILDER_IMAGE=f"{fake.host}/foundry-builder@{gone}")
    assert not result.ok and "(MANIFEST_UNKNOWN)" in result.detail


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("cr.azurecr.io/foundry-builder:abc", ("cr.azurecr.io", "foundry-builder", "abc", "")),
        ("127.0.0.1:5000/a/b", ("127.0.0.1:5000", "a/b", "latest", "")),
        ("localhost/a:1", ("localhost", "a", "1", "")),
        ("acme/builder:2", ("", "acme/builder", "2", "")),
        ("cr.io/a@sha256:00", ("cr.io", "a", "", "sha256:00")),
    ],
)
def test_image_references_split_like_docker(image, parts) -> None:
    ref = parse_image(image)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == parts


# -- secret references -------------------------------------------------------------------------
def test_one_unresolved_key_vault_reference(fake) -> None:
    fake.config_references[APP][0] = reference(KEY_VAULT_SETTINGS[0], "AccessToKeyVaultDenied")
    report = run_preflight(environment(fake), credential=FakeCredential())
    result = next(c for c in report.checks if c.name == "secret_references")
    assert not result.ok
    assert result.detail == f"{KEY_VAULT_SETTINGS[0]} is AccessToKeyVaultDenied"
    assert f"az functionapp restart -g {RG} -n {APP}" in result.fix
    assert "azd hooks run postprovision" in result.fix
    # Names and states only: not the reference, the vault or the secret.
    text = json.dumps(report.to_dict())
    assert VAULT not in text and "SecretName" not in text and "s-foundry" not in text


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        ("SecretNotFound", "azd provision (writes both secrets"),
        ("VaultNotFound", "azd provision (writes both secrets"),
        ("MSINotEnabled", "keyVaultReferenceIdentity"),
        ("Initialized", "az functionapp restart"),
    ],
)
def test_each_reference_state_has_its_fix(fake, status, fix) -> None:
    fake.config_references[APP][0] = reference(KEY_VAULT_SETTINGS[0], status)
    result = check(fake, "secret_references")
    assert not result.ok and result.detail == f"{KEY_VAULT_SETTINGS[0]} is {status}"
    assert fix in result.fix


def test_a_secret_setting_that_is_no_reference(fake) -> None:
    fake.config_references[APP].pop(0)
    result = check(fake, "secret_references")
    assert not result.ok
    assert result.detail == f"not Key Vault references: {KEY_VAULT_SETTINGS[0]}"


def test_a_missing_function_app_fails_both_checks_that_read_it(fake) -> None:
    fake.sites.pop(APP)
    report = run_preflight(environment(fake), credential=FakeCredential())
    failed = {c.name: c for c in report.checks if not c.ok}
    assert set(failed) == {"secret_references", "role_assignments"}
    for result in failed.values():
        assert result.detail == f"Function App {APP} does not exist in resource group {RG}"
    report = run_preflight(environment(fake, AZURE_FUNCTION_NAME=""), credential=FakeCredential())
    assert {c.name for c in report.checks if not c.ok} == set(failed)


# -- role assignments ----------------------------------------------------------------------
def _drop(fake: FakeAzure, principal: str, scope: Scope, role: str) -> dict[str, Any]:
    (gone,) = [
        a
        for a in fake.role_assignments
        if a["properties"]["principalId"] == principal
        and a["properties"]["scope"] == SCOPE_IDS[scope]
        and a["properties"]["roleDefinitionId"].endswith(role)
    ]
    fake.role_assignments.remove(gone)
    return gone


def test_a_missing_role_assignment(fake) -> None:
    acr_delete = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
    _drop(fake, SVC_PRINCIPAL, Scope.REGISTRY, acr_delete)
    result = check(fake, "role_assignments")
    assert not result.ok
    assert result.detail == (
        "service identity: 11 of 12 roles; build identity: 1 of 1 roles; "
        f"missing: AcrDelete on registry {ACR} (service identity)"
    )
    assert result.fix.startswith("azd provision (infra/app/rbac.bicep creates them)")
    assert (
        f"az role assignment create --assignee-object-id {SVC_PRINCIPAL} "
        f"--assignee-principal-type ServicePrincipal --role {acr_delete} "
        f"--scope {SCOPE_IDS[Scope.REGISTRY]}"
    ) in result.fix


def test_a_role_on_the_wrong_scope_does_not_count(fake) -> None:
    table = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    _drop(fake, SVC_PRINCIPAL, Scope.HOST_STORAGE, table)  # job storage still has one
    pull = _drop(fake, BUILD_PRINCIPAL, Scope.REGISTRY, "7f951dda-4ed3-4680-a7ca-43fe172d538d")
    pull["properties"]["scope"] = SCOPE_IDS[Scope.JOB_STORAGE]
    fake.role_assignments.append(pull)
    result = check(fake, "role_assignments")
    assert not result.ok
    assert "service identity: 11 of 12 roles; build identity: 0 of 1 roles" in result.detail
    assert f"Storage Table Data Contributor on host storage {HOST_STORAGE}" in result.detail
    assert f"AcrPull on registry {ACR} (build identity)" in result.detail


def test_a_missing_custom_role(fake) -> None:
    fake.role_definitions.clear()
    result = check(fake, "role_assignments")
    assert not result.ok
    assert f"custom role '{orchestrator_role_name()}' does not exist" in result.detail


def test_a_missing_build_identity(fake) -> None:
    fake.identities.clear()
    result = check(fake, "role_assignments")
    assert not result.ok and result.detail.endswith("missing: build identity not found")


def test_fresh_assignments_are_flagged_as_maybe_not_in_effect(fake) -> None:
    now = datetime.now(UTC)
    secrets_user = "4633458b-17de-408a-b874-0445c86b69e6"
    fresh = _drop(fake, SVC_PRINCIPAL, Scope.KEY_VAULT, secrets_user)
    fresh["properties"]["createdOn"] = now.isoformat()
    fake.role_assignments.append(fresh)
    report = run_preflight(environment(fake), credential=FakeCredential(), now=now)
    result = next(c for c in report.checks if c.name == "role_assignments")
    assert result.ok
    assert result.detail.endswith(
        "created in the last 10 minutes, may not be in effect yet: "
        "Key Vault Secrets User on key vault (service identity)"
    )


def test_a_refused_read_names_status_and_code(fake) -> None:
    fake.fail("GET", r"/roleAssignments$", status=403, code="AuthorizationFailed")
    result = check(fake, "role_assignments")
    assert not result.ok
    assert result.detail == "could not read role assignments: HTTP 403 AuthorizationFailed"
    assert "lacks read access" in result.fix


# -- healthz -----------------------------------------------------------------------------------
def test_healthz_down(fake) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    result = check(fake, "healthz", FOUNDRY_ADMIN_APP_URL=url)
    assert not result.ok
    assert result.detail == f"{url}/v1/healthz did not answer (ConnectError)"
    assert result.fix.startswith("azd deploy")


def test_healthz_degraded_names_its_reasons(fake) -> None:
    reason = "FOUNDRY_SERVICE_API_KEYS is an unresolved Key Vault reference (not configured)"
    fake.health = (200, {"status": "degraded", "reasons": [reason]})
    result = check(fake, "healthz")
    assert not result.ok and result.detail == f"degraded: {reason}"


def test_healthz_answering_an_error(fake) -> None:
    fake.health = (503, {"error": "unavailable"})
    result = check(fake, "healthz")
    assert not result.ok and result.detail.endswith("/v1/healthz answered HTTP 503")


def test_report_exit_codes() -> None:
    good = preflight.CheckResult("settings", True, "")
    bad = preflight.CheckResult("registry", False, "")
    assert PreflightReport((good,)).exit_code == EXIT_OK
    assert PreflightReport((good, bad)).exit_code == EXIT_FAILED
    assert PreflightReport((replace(good, ok=False),)).exit_code == EXIT_UNCONFIGURED


def test_the_operator_cli_runs_the_preflight(fake, monkeypatch) -> None:
    """``python -m admin preflight`` is the same report, with the CLI's exit-code table."""
    from admin import cli

    for name in list(os.environ):
        if name.startswith("FOUNDRY_SERVICE_AZURE_"):
            monkeypatch.delenv(name)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["preflight", "--json"], out=out, err=err)
    assert code == 4  # settings incomplete: the CLI's "auth/misconfigured"
    document = json.loads(out.getvalue())
    assert document["ok"] is False and document["checks"][0]["name"] == "settings"
    human = io.StringIO()
    assert cli.main(["preflight"], out=human, err=err) == 4
    assert "settings" in human.getvalue() and "fix:" in human.getvalue()
    assert fake.requests == []
