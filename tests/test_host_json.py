"""host.json: valid JSON for the Functions host, telemetry through OpenTelemetry."""

from __future__ import annotations

import json
from pathlib import Path

from tests.infra import bicep

HOST = json.loads((Path(__file__).resolve().parents[1] / "host.json").read_text())


def test_host_json_is_a_v2_host_config_with_the_durable_extension() -> None:
    assert HOST["version"] == "2.0"
    assert HOST["extensions"]["durableTask"]["hubName"] == "%FOUNDRY_SERVICE_TASK_HUB%"
    assert HOST["extensions"]["http"]["routePrefix"] == ""
    assert HOST["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"


def test_host_and_worker_telemetry_use_opentelemetry() -> None:
    # The host emits OpenTelemetry; PYTHON_ENABLE_OPENTELEMETRY lets the worker stream its own
    # spans and logs, linked to the host's, instead of the host duplicating them.
    assert HOST["telemetryMode"] == "OpenTelemetry"
    settings = bicep.load(bicep.INFRA / "app" / "function.bicep").resources["appSettings"]
    assert settings.body["properties"]["PYTHON_ENABLE_OPENTELEMETRY"] == "'true'"


ROOT = Path(__file__).resolve().parents[1]
DTS = json.loads((ROOT / "host.dts.json").read_text())


def test_the_default_provider_is_azure_storage_with_explicit_scaling_knobs() -> None:
    provider = HOST["extensions"]["durableTask"]["storageProvider"]
    assert "type" not in provider  # no type: the Azure Storage provider
    assert 1 <= provider["partitionCount"] <= 16  # one control queue (and worker) per partition
    assert provider["maxQueuePollingInterval"] == "00:00:10"


def test_the_durable_task_scheduler_variant_switches_only_the_provider() -> None:
    """``cp host.dts.json host.json`` before deploying selects the Durable Task Scheduler
    (docs/scaling.md); everything else must stay the same as host.json."""
    provider = DTS["extensions"]["durableTask"]["storageProvider"]
    assert provider == {
        "type": "azureManaged",
        "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }
    assert DTS["extensionBundle"]["id"].startswith("Microsoft.Azure.Functions.ExtensionBundle")

    def without_provider(doc: dict) -> dict:
        copy = json.loads(json.dumps(doc))
        del copy["extensions"]["durableTask"]["storageProvider"]
        del copy["extensionBundle"]
        return copy

    assert without_provider(DTS) == without_provider(HOST)
