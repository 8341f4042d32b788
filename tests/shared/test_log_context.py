from __future__ import annotations

import json
import logging

from shared.log_context import JobContextFilter, JsonFormatter, job_context
from tests.conftest import submission
from tests.scripted_backend import ScriptedBackend


def test_activity_log_lines_carry_the_job_id(api, driver, services, caplog) -> None:
    caplog.handler.addFilter(JobContextFilter())
    caplog.set_level(logging.INFO, logger="shared")
    services.backend = ScriptedBackend()
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    driver.run_to_completion(accepted["job_id"])
    ours = [r for r in caplog.records if r.name.startswith("shared.pipeline.steps")]
    assert {r.getMessage().split(" ")[0] for r in ours} >= {"build", "job"}
    assert {r.job_id for r in ours} == {accepted["job_id"]}
    assert {r.instance_id for r in ours} == {accepted["job_id"]}


def test_json_lines_are_scrubbed() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "token %s url %s",
        ("fb_01JSECRETSECRETSECRETSECRE", "https://a/b?sv=1&sig=SIGNATURE"),
        None,
    )
    with job_context("fj_01JABC"):
        JobContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == "fj_01JABC"
    assert "SECRET" not in line["message"] and "SIGNATURE" not in line["message"]


def test_telemetry_is_off_without_a_connection_string() -> None:
    from shared import telemetry

    assert telemetry.configure({}) is False


def test_telemetry_exports_with_the_managed_identity(monkeypatch) -> None:
    import azure.monitor.opentelemetry as otel

    from shared import telemetry
    from shared.identity import service_credential
    from shared.storage.clients import default_credential

    seen = {}
    monkeypatch.setattr(otel, "configure_azure_monitor", lambda **kw: seen.update(kw))
    monkeypatch.setenv("AZURE_CLIENT_ID", "abc")
    service_credential.cache_clear()
    assert telemetry.configure(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=abc;Authorization=AAD",
            "AZURE_CLIENT_ID": "abc",
        }
    )
    assert seen["connection_string"].startswith("InstrumentationKey=")
    assert type(seen["credential"]).__name__ == "ManagedIdentityCredential"
    # One credential for the process: telemetry, storage and the backend share it.
    assert seen["credential"] is service_credential() is default_credential()
    service_credential.cache_clear()
