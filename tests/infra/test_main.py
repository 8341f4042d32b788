"""infra/main.bicep composes app/*.bicep: the checks the Bicep compiler would make first (module
paths, params, output references), plus what azd and the operator CLI need from it."""

from __future__ import annotations

import json
import re

import pytest

from shared.config.azure import REQUIRED
from tests.infra import bicep
from tests.infra.test_drift import names_the_code_reads

MAIN = bicep.load(bicep.MAIN)
PARAMETERS = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
#: One module per concern, as in the azd Durable quickstart template (main.bicep + app/*.bicep).
MODULES = {
    "monitoring": "app/monitoring.bicep",
    "storage": "app/storage.bicep",
    "identity": "app/identity.bicep",
    "build": "app/build.bicep",
    "keyVault": "app/keyvault.bicep",
    "rbac": "app/rbac.bicep",
    "llmProxy": "app/proxy.bicep",
    "functionApp": "app/function.bicep",
}


def test_main_composes_one_module_per_concern() -> None:
    assert {s: m.path for s, m in MAIN.modules.items()} == MODULES
    assert MAIN.resources.keys() == {"rg"}, "main.bicep declares only the resource group"
    assert not (bicep.INFRA / "app" / "resources.bicep").exists()


@pytest.mark.parametrize("symbol", sorted(MODULES))
def test_every_module_path_resolves(symbol: str) -> None:
    assert (bicep.MAIN.parent / MAIN.modules[symbol].path).is_file()


@pytest.mark.parametrize("symbol", sorted(MODULES))
def test_modules_get_exactly_the_params_they_declare(symbol: str) -> None:
    module = MAIN.modules[symbol]
    declared = MAIN.module_file(module).params
    passed = set(module.params)
    assert passed <= declared.keys(), f"{symbol}: no such params {passed - declared.keys()}"
    required = {n for n, p in declared.items() if p.required}
    assert required <= passed, f"{symbol}: missing required params {required - passed}"


def test_every_output_reference_names_a_real_output() -> None:
    refs = MAIN.output_references()
    assert refs, "main.bicep should read module outputs"
    for symbol, name in refs:
        assert symbol in MAIN.modules, f"{symbol}.outputs.{name}: no module {symbol}"
        outputs = MAIN.module_file(MAIN.modules[symbol]).outputs
        assert name in outputs, f"{MAIN.modules[symbol].path} has no output {name}"


def test_module_outputs_only_reference_modules_declared_earlier() -> None:
    order = list(MAIN.modules)
    for symbol, module in MAIN.modules.items():
        used = {s for s, _ in bicep.OUTPUT_REFERENCE.findall(json.dumps(module.body))}
        used |= set(module.depends_on)
        late = {s for s in used if order.index(s) >= order.index(symbol)}
        assert not late, f"{symbol} reads {late}, declared after it (a cycle or a typo)"


def test_the_app_is_deployed_after_its_role_assignments() -> None:
    # Its first start resolves Key Vault references as the service identity.
    assert "rbac" in MAIN.modules["functionApp"].depends_on


def test_the_proxy_is_deployed_once_its_image_exists() -> None:
    assert MAIN.modules["llmProxy"].condition == "!empty(proxyImage)"
    assert MAIN.modules["llmProxy"].params["image"] == "proxyImage"
    assert {s for s, m in MAIN.modules.items() if m.condition} == {"llmProxy"}
    assert MAIN.params["proxyImage"].default == "''"
    # azd fills it from the variable the postprovision hook records.
    assert PARAMETERS["proxyImage"]["value"] == "${FOUNDRY_PROXY_IMAGE}"
    hook = (bicep.INFRA / "hooks" / "postprovision.sh").read_text()
    assert 'azd env set FOUNDRY_PROXY_IMAGE "$proxy_image"' in hook
    assert "azd provision --no-prompt" in hook  # the second pass that deploys it


def test_the_conditional_proxy_is_read_only_behind_its_condition() -> None:
    # A module that is not deployed has no outputs: reading one unguarded fails the deployment.
    reads = re.findall(r"[^\n]*\bllmProxy\.outputs\.\w+", MAIN.text)
    assert len(reads) == 2, reads
    for read in reads:
        assert re.search(r"\bempty\(proxyImage\) \? '' : llmProxy\.outputs\.\w+$", read), read


def test_the_app_points_builders_at_the_proxy() -> None:
    passed = MAIN.modules["functionApp"].params
    assert passed["builderProxyUrl"] == "empty(proxyImage) ? '' : llmProxy.outputs.url"
    assert MAIN.module_file(MAIN.modules["llmProxy"]).outputs["url"].startswith("'https://${")
    # The hook waits for the proxy's revision by this name.
    assert MAIN.outputs["AZURE_LLM_PROXY_NAME"] == "empty(proxyImage) ? '' : llmProxy.outputs.name"
    hook = (bicep.INFRA / "hooks" / "postprovision.sh").read_text()
    assert "${AZURE_LLM_PROXY_NAME:-}" in hook


def test_the_proxy_gets_the_shared_resources_by_module_output() -> None:
    assert MAIN.modules["llmProxy"].params == {
        "location": "location",
        "tags": "tags",
        "resourceToken": "resourceToken",
        "image": "proxyImage",
        "environmentId": "build.outputs.acaEnvironmentId",
        "registryName": "build.outputs.registryName",
        "keyVaultName": "keyVault.outputs.keyVaultName",
        "anthropicKeySecretName": "keyVault.outputs.anthropicKeySecretName",
        "jobStorageName": "storage.outputs.jobStorageName",
        "appInsightsName": "monitoring.outputs.appInsightsName",
    }


def _without_descriptions(text: str) -> str:
    text = re.sub(r"@description\('(?:[^'\\]|\\.)*'\)", "", text)
    return re.sub(r"//.*", "", text)


@pytest.mark.parametrize("path", sorted(p.name for p in bicep.INFRA.rglob("*.bicep")))
def test_every_declared_param_is_used(path: str) -> None:
    parsed = next(f for f in bicep.all_files() if f.path.name == path)
    code = _without_descriptions(parsed.text)
    for name in parsed.params:
        uses = len(re.findall(rf"(?<![\w.]){name}\b", code)) - 1  # minus the declaration
        assert uses >= 1, f"{path}: param {name} is never used"


def test_secure_values_never_reach_an_output_or_a_plain_param() -> None:
    for parsed in bicep.all_files():
        secure = {n for n, p in parsed.params.items() if p.secure}
        for name, value in parsed.outputs.items():
            assert not secure & set(re.findall(r"\w+", value)), f"{parsed.path.name}: {name}"
        for module in parsed.modules.values():
            target = parsed.module_file(module).params
            for param, value in module.params.items():
                if value in secure:
                    assert target[param].secure, f"{module.path}: {param} must be @secure()"


def test_parameters_file_maps_only_declared_params_and_every_required_one() -> None:
    assert PARAMETERS.keys() <= MAIN.params.keys()
    required = {n for n, p in MAIN.params.items() if p.required}
    assert required <= PARAMETERS.keys(), "azd maps or prompts for every required param"


def test_azd_fills_principal_type_and_secrets_from_its_environment() -> None:
    assert PARAMETERS["principalType"]["value"] == "${AZURE_PRINCIPAL_TYPE=User}"
    assert MAIN.modules["rbac"].params["principalType"] == "principalType"
    # No default: azd prompts when the variable is unset, and @minLength(1) refuses an empty
    # value before anything is created.
    for param, variable in (
        ("foundryApiKeys", "FOUNDRY_API_KEYS"),
        ("anthropicApiKey", "FOUNDRY_ANTHROPIC_API_KEY"),
    ):
        assert PARAMETERS[param]["value"] == "${" + variable + "}"
        declared = MAIN.params[param]
        assert declared.secure and declared.required and declared.decorators["minLength"] == "1"


def test_no_default_builder_image_is_the_quickstart_one() -> None:
    # quickstart-jobs writes no stream.jsonl: every build would end build_crashed.
    assert MAIN.params["builderImage"].default == "''"
    assert PARAMETERS["builderImage"]["value"] == "${FOUNDRY_BUILDER_IMAGE}"
    for path in [*bicep.INFRA.rglob("*.bicep"), *bicep.INFRA.rglob("*.json")]:
        assert "quickstart" not in path.read_text(), path


def test_outputs_feed_the_operator_cli_and_the_hook() -> None:
    outputs = MAIN.outputs.keys()
    settings = {
        n for n in outputs if n.startswith("FOUNDRY_SERVICE_") and n != "FOUNDRY_SERVICE_URL"
    }
    # `azd env get-values` then configures python -m admin like the deployed app ...
    assert settings <= names_the_code_reads(), settings - names_the_code_reads()
    needed = {f"FOUNDRY_SERVICE_AZURE_{n}" for n in REQUIRED} | {"FOUNDRY_SERVICE_BUILD_BACKEND"}
    assert needed <= settings
    assert MAIN.outputs["FOUNDRY_SERVICE_BUILD_BACKEND"] == "'azure_container_apps'"
    admin = (bicep.ROOT / "admin" / "cli.py").read_text()
    assert '"FOUNDRY_ADMIN_APP_URL"' in admin and "FOUNDRY_ADMIN_APP_URL" in outputs
    # ... and the postprovision hook finds what it builds into and updates.
    hook = (bicep.INFRA / "hooks" / "postprovision.sh").read_text()
    wanted = set(re.findall(r"\$\{(\w+):\?", hook)) - {"AZURE_SUBSCRIPTION_ID"}  # azd's own
    assert wanted and wanted <= outputs, wanted - outputs
    assert {
        "AZURE_CONTAINER_REGISTRY_ENDPOINT",
        "AZURE_KEY_VAULT_NAME",
        "AZURE_LOCATION",
    } <= outputs
