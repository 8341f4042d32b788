"""The managed identity's client id has one source, ``AzureSettings.mi_client_id``: the
credential reads that field alone (where the rest of ``AzureSettings`` is unset), and gets what
the loaded settings hold."""

from __future__ import annotations

import pytest

from shared.config.azure import REQUIRED, AzureSettings
from shared.config.env import setting_text
from shared.identity import managed_identity_client_id

ALIAS = "FOUNDRY_SERVICE_AZURE_MI_CLIENT_ID"
LOADABLE = {f"FOUNDRY_SERVICE_AZURE_{name}": "x" for name in REQUIRED}


@pytest.mark.parametrize(
    ("env", "client_id"),
    [
        ({}, None),
        ({ALIAS: "alias-id"}, "alias-id"),
        ({"AZURE_CLIENT_ID": " platform-id "}, "platform-id"),
        ({"AZURE_CLIENT_ID": "platform-id", ALIAS: "alias-id"}, "platform-id"),
        ({"AZURE_CLIENT_ID": "  ", ALIAS: "alias-id"}, "alias-id"),
    ],
)
def test_the_credential_reads_the_client_id_the_settings_hold(
    env: dict[str, str], client_id: str | None
) -> None:
    assert managed_identity_client_id(env) == client_id
    assert AzureSettings.from_env({**LOADABLE, **env}).mi_client_id == client_id


def test_only_a_text_field_can_be_read_on_its_own() -> None:
    with pytest.raises(TypeError, match="build_cpu is not a text field"):
        setting_text(AzureSettings, "build_cpu", {}, prefix="FOUNDRY_SERVICE_AZURE_")
