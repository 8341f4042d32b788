"""infra/app/keyvault.bicep: the secrets exist, from @secure() params, before the app reads them."""

from __future__ import annotations

from tests.infra import bicep

VAULT = bicep.load(bicep.INFRA / "app" / "keyvault.bicep")
MAIN = bicep.load(bicep.MAIN)
FUNCTION = bicep.load(bicep.INFRA / "app" / "function.bicep")
SECRETS = {"apiKeysSecret": "foundryApiKeys", "anthropicKeySecret": "anthropicApiKey"}


def test_secrets_are_written_from_secure_params() -> None:
    for symbol, param in SECRETS.items():
        secret = VAULT.resources[symbol]
        assert secret.type.startswith("Microsoft.KeyVault/vaults/secrets@")
        assert secret.body["parent"] == "keyVault"
        assert secret.body["properties"]["value"] == param
        declared = VAULT.params[param]
        assert declared.secure and declared.required and declared.decorators["minLength"] == "1"


def test_the_vault_authorizes_with_rbac_and_keeps_deleted_secrets() -> None:
    props = VAULT.resources["keyVault"].body["properties"]
    assert props["enableRbacAuthorization"] == "true"
    assert props["enablePurgeProtection"] == "true"


def test_the_anthropic_key_reaches_the_proxy_only() -> None:
    # The Function App no longer reads it, so it must not hold it (docs/llm-proxy.md).
    assert "anthropicKeySecretName" not in MAIN.modules["functionApp"].params
    assert "anthropicKeySecretName" not in FUNCTION.params
    assert "anthropicKeySecretName" not in FUNCTION.text
    settings = FUNCTION.resources["appSettings"].body["properties"]
    assert not [name for name in settings if "ANTHROPIC" in name]
    proxy = bicep.load(bicep.INFRA / "app" / "proxy.bicep")
    secrets = proxy.resources["proxyApp"].body["properties"]["configuration"]["secrets"]
    assert "secrets/${anthropicKeySecretName}'" in secrets
    assert "identity: proxyIdentity.id" in secrets  # read as the proxy's own identity


def test_outputs_carry_names_never_values() -> None:
    assert VAULT.outputs["apiKeysSecretName"] == "apiKeysSecret.name"
    assert VAULT.outputs["anthropicKeySecretName"] == "anthropicKeySecret.name"
    assert not any("properties.value" in v or v in SECRETS.values() for v in VAULT.outputs.values())


def test_app_settings_reference_the_secrets_this_deployment_creates() -> None:
    # Wiring through the module outputs makes the app settings wait for their secret, and the
    # proxy's revision (which reads the Anthropic key) wait for its own.
    passed = MAIN.modules["functionApp"].params
    assert passed["apiKeysSecretName"] == "keyVault.outputs.apiKeysSecretName"
    assert passed["keyVaultName"] == "keyVault.outputs.keyVaultName"
    proxy = MAIN.modules["llmProxy"].params
    assert proxy["anthropicKeySecretName"] == "keyVault.outputs.anthropicKeySecretName"
    assert proxy["keyVaultName"] == "keyVault.outputs.keyVaultName"
    settings = FUNCTION.resources["appSettings"].body["properties"]
    assert settings["FOUNDRY_SERVICE_API_KEYS"] == "'${kvRef}${apiKeysSecretName})'"
    assert (
        FUNCTION.variables["kvRef"] == "'@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName='"
    )
    assert MAIN.modules["keyVault"].params == {
        "location": "location",
        "tags": "tags",
        "resourceToken": "resourceToken",
        "foundryApiKeys": "foundryApiKeys",
        "anthropicApiKey": "anthropicApiKey",
    }
