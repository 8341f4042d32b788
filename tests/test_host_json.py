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
