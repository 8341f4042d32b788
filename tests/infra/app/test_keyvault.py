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


def test_outputs_carry_names_never_values() -> None:
    assert VAULT.outputs["apiKeysSecretName"] == "apiKeysSecret.name"
    assert VAULT.outputs["anthropicKeySecretName"] == "anthropicKeySecret.name"
    assert not any("properties.value" in v or v in SECRETS.values() for v in VAULT.outputs.values())


def test_app_settings_reference_the_secrets_this_deployment_creates() -> None:
    # Wiring through the module outputs makes the app settings wait for both secrets.
    passed = MAIN.modules["functionApp"].params
    assert passed["apiKeysSecretName"] == "keyVault.outputs.apiKeysSecretName"
    assert passed["anthropicKeySecretName"] == "keyVault.outputs.anthropicKeySecretName"
    assert passed["keyVaultName"] == "keyVault.outputs.keyVaultName"
    settings = FUNCTION.resources["appSettings"].body["properties"]
    assert settings["FOUNDRY_SERVICE_API_KEYS"] == "'${kvRef}${apiKeysSecretName})'"
    assert settings["FOUNDRY_SERVICE_ANTHROPIC_API_KEY"] == "'${kvRef}${anthropicKeySecretName})'"
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
