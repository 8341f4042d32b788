"""infra/app/function.bicep: the app's settings beyond the drift test's FOUNDRY_SERVICE_* list."""

from __future__ import annotations

from tests.infra import bicep

FUNCTION = bicep.load(bicep.INFRA / "app" / "function.bicep")
SETTINGS = FUNCTION.resources["appSettings"].body["properties"]


def test_worker_telemetry_goes_through_opentelemetry() -> None:
    # host.json sets "telemetryMode": "OpenTelemetry" (tests/test_host_json.py).
    assert SETTINGS["PYTHON_ENABLE_OPENTELEMETRY"] == "'true'"


def test_builder_image_comes_only_from_the_deployment() -> None:
    assert SETTINGS["FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE"] == "builderImage"
    assert FUNCTION.params["builderImage"].required


def test_identity_based_storage_and_telemetry() -> None:
    assert SETTINGS["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert SETTINGS["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD'")
    assert "AzureWebJobsStorage" not in SETTINGS  # no connection string with a key
    site = FUNCTION.resources["functionApp"].body
    assert site["properties"]["keyVaultReferenceIdentity"] == "serviceIdentityId"
    assert site["properties"]["httpsOnly"] == "true"


def test_builders_reach_the_llm_proxy_the_deployment_made() -> None:
    # main.bicep passes proxy.bicep's url output (empty until the proxy exists).
    assert SETTINGS["FOUNDRY_SERVICE_BUILDER_PROXY_URL"] == "builderProxyUrl"
    assert FUNCTION.params["builderProxyUrl"].required
    # Build notices go to the app itself, not to the proxy.
    assert (
        SETTINGS["FOUNDRY_SERVICE_BUILDER_API_URL"]
        == "'https://${functionApp.properties.defaultHostName}'"
    )
