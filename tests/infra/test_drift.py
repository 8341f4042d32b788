"""Code and infrastructure cannot drift: every FOUNDRY_SERVICE_* setting the code reads is set by
the Bicep, and the Bicep sets nothing the code does not read (dev/test-only names excepted).

Two apps, two halves: the Function App's code (Settings, AzureSettings, host.json) against
function.bicep's app settings, and the LLM proxy's (ProxySettings and its token store) against
proxy.bicep's container environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.config.azure import REQUIRED, AzureSettings
from shared.config.azure import P as AZURE_PREFIX
from shared.config.env import bindings
from shared.config.settings import ENV_PREFIX, SECRET_SETTINGS, Settings
from shared.llm_proxy import PROXY_ENV_PREFIX, ProxySettings

ROOT = Path(__file__).resolve().parents[2]
APP_BICEP = ROOT / "infra" / "app" / "function.bicep"  # the Function App and its app settings
PROXY_BICEP = ROOT / "infra" / "app" / "proxy.bicep"  # the LLM proxy and its environment
#: Read by the code, deliberately not deployed: local backend, emulator and test overrides.
DEV_ONLY = {
    "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING",
    "FOUNDRY_SERVICE_LOCAL_WORK_DIR",
    "FOUNDRY_SERVICE_LOCAL_BUILDER_COMMAND",
    "FOUNDRY_SERVICE_LOCAL_PREVIEW_HOST",
    "FOUNDRY_SERVICE_AZURE_ARM_URL",
    "FOUNDRY_SERVICE_AZURE_ACR_LOGIN_SERVER",
    "FOUNDRY_SERVICE_AZURE_CA_BUNDLE",
}
#: Looked up by the Function App only to report an unresolved Key Vault reference (the shared
#: SECRET_SETTINGS scan), never used by it: the proxy's credential, deployed on the proxy app.
#: test_scanned_secrets_are_the_proxys_and_ignored_by_the_app holds each of these claims.
SCANNED_NOT_USED = {"FOUNDRY_SERVICE_ANTHROPIC_API_KEY"}


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name the code looks up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


BASE_ENV = {"FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": "st"} | {
    f"FOUNDRY_SERVICE_AZURE_{n}": "x" for n in REQUIRED
}


def names_the_function_app_reads() -> set[str]:
    env = RecordingEnv(BASE_ENV)
    Settings.from_env(env)
    AzureSettings.from_env(env)
    host_json = (ROOT / "host.json").read_text() + (ROOT / "timers" / "maintenance.py").read_text()
    env.read |= set(re.findall(r"%(FOUNDRY_SERVICE_[A-Z0-9_]+)%", host_json))
    return {n for n in env.read if n.startswith("FOUNDRY_SERVICE_")}


def names_the_loader_declares() -> set[str]:
    """The variables in the settings classes' field metadata (own and fallback ones)."""
    classes = (
        (Settings, ENV_PREFIX),
        (AzureSettings, AZURE_PREFIX),
        (ProxySettings, PROXY_ENV_PREFIX),
    )
    return {v for cls, prefix in classes for b in bindings(cls, prefix) for v in b.variables}


def test_the_code_reads_exactly_what_the_settings_classes_declare() -> None:
    """The lookups the three classes make are the declared ones: neither misses a variable the
    other has (a lookup outside the loader, or a declared field the loader skips)."""
    env = RecordingEnv(BASE_ENV)
    Settings.from_env(env)
    AzureSettings.from_env(env)
    ProxySettings.from_env(env)
    assert env.read == names_the_loader_declares() | set(SECRET_SETTINGS)


def names_the_proxy_reads() -> set[str]:
    env = RecordingEnv({})
    ProxySettings.from_env(env)
    return {n for n in env.read if n.startswith("FOUNDRY_SERVICE_")} | {
        "FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT",  # the job and token tables, by managed identity
        "FOUNDRY_SERVICE_TABLE_PREFIX",
    }


def names_the_code_reads() -> set[str]:
    """Every FOUNDRY_SERVICE_* name either deployed app reads (what docs and outputs may name)."""
    return names_the_function_app_reads() | names_the_proxy_reads()


def names_the_bicep_sets() -> set[str]:
    text = APP_BICEP.read_text()
    block = text[text.index("name: 'appsettings'") :]
    block = block[: block.index("\n  }\n}")]
    return set(re.findall(r"^\s+(FOUNDRY_SERVICE_[A-Z0-9_]+)\s*:", block, re.MULTILINE))


def test_every_setting_the_function_app_reads_is_deployed() -> None:
    missing = names_the_function_app_reads() - DEV_ONLY - SCANNED_NOT_USED - names_the_bicep_sets()
    assert not missing, f"set these in {APP_BICEP.name}: {sorted(missing)}"


def test_function_bicep_sets_nothing_the_function_app_ignores() -> None:
    unused = names_the_bicep_sets() - names_the_function_app_reads()
    assert not unused, f"the Function App does not read {sorted(unused)}"


def test_the_function_app_holds_none_of_the_proxys_settings() -> None:
    # They moved to proxy.bicep with the proxy; the Anthropic key above all must not be here.
    only_the_proxy = names_the_proxy_reads() - names_the_function_app_reads()
    assert only_the_proxy >= {
        "FOUNDRY_SERVICE_ANTHROPIC_BASE_URL",
        "FOUNDRY_SERVICE_PROXY_MODEL_PREFIXES",
        "FOUNDRY_SERVICE_PROXY_MAX_BODY_BYTES",
        "FOUNDRY_SERVICE_PROXY_MAX_OUTPUT_TOKENS",
        "FOUNDRY_SERVICE_PROXY_MAX_CONCURRENT",
    }
    held = (only_the_proxy | SCANNED_NOT_USED) & names_the_bicep_sets()
    assert not held, f"{APP_BICEP.name} sets the proxy's {sorted(held)}"


def test_scanned_secrets_are_the_proxys_and_ignored_by_the_app() -> None:
    assert set(SECRET_SETTINGS) >= SCANNED_NOT_USED
    assert names_the_function_app_reads() >= SCANNED_NOT_USED  # else drop it from the set
    assert names_the_proxy_reads() & names_the_proxy_bicep_sets().keys() >= SCANNED_NOT_USED
    # The app's settings do not depend on the value, only on whether it is an unresolved
    # reference (which an unset name never is).
    unset = Settings.from_env(BASE_ENV)
    for name in SCANNED_NOT_USED:
        assert Settings.from_env(BASE_ENV | {name: "sk-real-value"}) == unset
        assert AzureSettings.from_env(BASE_ENV | {name: "sk-real-value"}) == AzureSettings.from_env(
            BASE_ENV
        )


def test_dev_only_names_are_really_read() -> None:
    assert names_the_function_app_reads() >= DEV_ONLY


def test_local_settings_sample_only_names_real_settings() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    ours = {n for n in sample if n.startswith("FOUNDRY_SERVICE_")}
    assert ours <= names_the_code_reads()


def test_secrets_come_from_key_vault_references() -> None:
    text = APP_BICEP.read_text()
    secrets = set(SECRET_SETTINGS) & names_the_bicep_sets()
    assert secrets == {"FOUNDRY_SERVICE_API_KEYS"}  # the Anthropic key is the proxy's (below)
    for name in secrets:
        line = next(line for line in text.splitlines() if line.strip().startswith(name + ":"))
        assert "@Microsoft.KeyVault(" in line or "kvRef" in line, line
    every_file = "\n".join(p.read_text() for p in sorted((ROOT / "infra").rglob("*.bicep")))
    assert "listKeys" not in every_file.replace("logs.listKeys()", "")  # no storage account keys
    storage = (ROOT / "infra" / "app" / "storage.bicep").read_text()
    assert storage.count("allowSharedKeyAccess: false") == 2  # host and job accounts


def bicep_syntax_errors(source: bytes) -> list[str]:
    """Syntax check with the tree-sitter Bicep grammar (the Bicep CLI is not installable here)."""
    import tree_sitter_bicep
    from tree_sitter import Language, Parser

    parser = Parser(Language(tree_sitter_bicep.language()))
    errors: list[str] = []
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            errors.append(f"line {node.start_point[0] + 1}: {node.type}")
        stack.extend(node.children)
    return errors


def test_every_bicep_file_parses() -> None:
    files = sorted((ROOT / "infra").rglob("*.bicep"))
    assert {p.relative_to(ROOT / "infra").as_posix() for p in files} == {
        "main.bicep",
        "app/build.bicep",
        "app/function.bicep",
        "app/identity.bicep",
        "app/keyvault.bicep",
        "app/monitoring.bicep",
        "app/proxy.bicep",
        "app/rbac.bicep",
        "app/storage.bicep",
    }
    for path in files:
        assert bicep_syntax_errors(path.read_bytes()) == [], path


def test_the_syntax_check_catches_errors() -> None:
    assert bicep_syntax_errors(b"resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name: \n")


def names_the_proxy_bicep_sets() -> dict[str, str]:
    """``name -> value or secretRef`` of the proxy container's environment."""
    text = PROXY_BICEP.read_text()
    return dict(
        re.findall(
            r"\{ name: '(FOUNDRY_SERVICE_[A-Z0-9_]+)', (?:value|secretRef): ([^}]+?) \}", text
        )
    )


def test_the_proxy_container_gets_every_proxy_setting_and_its_storage() -> None:
    missing = names_the_proxy_reads() - names_the_proxy_bicep_sets().keys()
    assert not missing, f"set these in {PROXY_BICEP.name}: {sorted(missing)}"


def test_the_proxy_bicep_sets_nothing_the_proxy_ignores() -> None:
    unused = names_the_proxy_bicep_sets().keys() - names_the_proxy_reads()
    assert not unused, f"the proxy does not read {sorted(unused)}"


def test_the_proxy_reads_its_credential_from_key_vault_only() -> None:
    text = PROXY_BICEP.read_text()
    assert (
        names_the_proxy_bicep_sets()["FOUNDRY_SERVICE_ANTHROPIC_API_KEY"] == "'anthropic-api-key'"
    )
    assert "keyVaultUrl: '${keyVault.properties.vaultUri}secrets/${anthropicKeySecretName}'" in text
    assert "external: false" in text  # builders reach it inside the environment; nothing public
