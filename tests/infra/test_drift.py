"""Code and infrastructure cannot drift: every FOUNDRY_SERVICE_* setting the code reads is set by
the Bicep, and the Bicep sets nothing the code does not read (dev/test-only names excepted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.config.azure import REQUIRED, AzureSettings
from shared.config.settings import Settings
from shared.llm_proxy import ProxySettings

ROOT = Path(__file__).resolve().parents[2]
APP_BICEP = ROOT / "infra" / "app" / "function.bicep"  # the Function App and its app settings
PROXY_BICEP = ROOT / "infra" / "app" / "proxy.bicep"  # the LLM proxy (not wired yet)
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


def names_the_code_reads() -> set[str]:
    env = RecordingEnv(
        {"FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT": "st"}
        | {f"FOUNDRY_SERVICE_AZURE_{n}": "x" for n in REQUIRED}
    )
    Settings.from_env(env)
    AzureSettings.from_env(env)
    ProxySettings.from_env(env)
    host_json = (ROOT / "host.json").read_text() + (ROOT / "timers" / "maintenance.py").read_text()
    env.read |= set(re.findall(r"%(FOUNDRY_SERVICE_[A-Z0-9_]+)%", host_json))
    return {n for n in env.read if n.startswith("FOUNDRY_SERVICE_")}


def names_the_bicep_sets() -> set[str]:
    text = APP_BICEP.read_text()
    block = text[text.index("name: 'appsettings'") :]
    block = block[: block.index("\n  }\n}")]
    return set(re.findall(r"^\s+(FOUNDRY_SERVICE_[A-Z0-9_]+)\s*:", block, re.MULTILINE))


def test_every_setting_the_code_reads_is_deployed() -> None:
    missing = names_the_code_reads() - DEV_ONLY - names_the_bicep_sets()
    assert not missing, f"set these in {APP_BICEP.name}: {sorted(missing)}"


def test_the_bicep_sets_nothing_the_code_ignores() -> None:
    unused = names_the_bicep_sets() - names_the_code_reads()
    assert not unused, f"nothing reads {sorted(unused)}"


def test_dev_only_names_are_really_read() -> None:
    assert names_the_code_reads() >= DEV_ONLY


def test_local_settings_sample_only_names_real_settings() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    ours = {n for n in sample if n.startswith("FOUNDRY_SERVICE_")}
    assert ours <= names_the_code_reads()


def test_secrets_come_from_key_vault_references() -> None:
    text = APP_BICEP.read_text()
    for name in ("FOUNDRY_SERVICE_API_KEYS", "FOUNDRY_SERVICE_ANTHROPIC_API_KEY"):
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
    env = RecordingEnv({})
    ProxySettings.from_env(env)
    needed = {n for n in env.read if n.startswith("FOUNDRY_SERVICE_")} | {
        "FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT",  # the job and token tables, by managed identity
        "FOUNDRY_SERVICE_TABLE_PREFIX",
    }
    missing = needed - names_the_proxy_bicep_sets().keys()
    assert not missing, f"set these in {PROXY_BICEP.name}: {sorted(missing)}"


def test_the_proxy_bicep_sets_nothing_the_code_ignores() -> None:
    unused = names_the_proxy_bicep_sets().keys() - names_the_code_reads()
    assert not unused, f"nothing reads {sorted(unused)}"


def test_the_proxy_reads_its_credential_from_key_vault_only() -> None:
    text = PROXY_BICEP.read_text()
    assert (
        names_the_proxy_bicep_sets()["FOUNDRY_SERVICE_ANTHROPIC_API_KEY"] == "'anthropic-api-key'"
    )
    assert "keyVaultUrl: '${keyVault.properties.vaultUri}secrets/${anthropicKeySecretName}'" in text
    assert "external: false" in text  # builders reach it inside the environment; nothing public
