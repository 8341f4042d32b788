"""Secret settings fail closed: a value still shaped like a Key Vault reference (App Service
passes the reference text when it cannot resolve it) counts as not configured everywhere: /v1
refuses every call, the LLM proxy refuses, healthz is degraded and says which setting, and the
app logs one line at start. The reference text never becomes a key and never reaches a reply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import function_app
from api.auth import Authenticator
from devhost.http_host import FunctionHost
from proxy.server import proxy_from_env
from shared.config.settings import (
    SECRET_SETTINGS,
    Settings,
    is_key_vault_reference,
    log_unresolved_secrets,
    secret_setting,
)
from shared.domain.validation import parse_submit
from shared.errors import ConfigurationError
from shared.llm_proxy import ProxySettings
from shared.pipeline.submission import submit_job
from shared.services import Services, use_services
from tests.azurite import ROOT, Azurite, free_port
from tests.conftest import API_KEY, Api, submission
from tests.proxy.harness import ServedProxy

VAULT = "kv-foundry-public-name"  # derivable from the public app name: must never be a key


def ref(secret: str, *, spelling: str = "@Microsoft.KeyVault") -> str:
    return f"{spelling}(VaultName={VAULT};SecretName={secret})"


V1_ROUTES = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/logs"),
    ("GET", "/v1/jobs/{id}/artifact"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("DELETE", "/v1/jobs/{id}/preview"),
]


@pytest.mark.parametrize(
    "value",
    [
        ref("foundry-api-keys"),
        "  @microsoft.keyvault(SecretUri=https://kv.vault.azure.net/secrets/x/)  ",
        "@MICROSOFT.KEYVAULT (VaultName=kv;SecretName=x)",
        "@ Microsoft . KeyVault\t( VaultName=kv; SecretName=x )",
        f"real-key,{ref('k')}",  # one unresolved entry taints the whole list
        "@Microsoft.KeyVault(",  # truncated: still not a secret
    ],
)
def test_key_vault_reference_shapes_are_recognised(value: str) -> None:
    assert is_key_vault_reference(value)
    assert secret_setting({"S": value}, "S") == ""
    assert Authenticator(value).configured is False
    assert Authenticator(value).authenticate({"authorization": f"Bearer {value}"}) is None


@pytest.mark.parametrize(
    "value", ["dev-key", "Microsoft.KeyVault", "key@Microsoft-KeyVault", "sk-ant-abc", ""]
)
def test_ordinary_values_are_not_references(value: str) -> None:
    assert not is_key_vault_reference(value)
    assert secret_setting({"S": f" {value} "}, "S") == value


def env_with_references(azurite: Azurite, tmp_path: Path) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "FOUNDRY_SERVICE_API_KEYS": ref("foundry-api-keys"),
        "FOUNDRY_SERVICE_ANTHROPIC_API_KEY": ref(
            "anthropic-api-key", spelling="@microsoft.KEYVAULT"
        ),
        "AzureWebJobsStorage": ref("host-storage"),
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER": f"jobs-{suffix}",
        "FOUNDRY_SERVICE_TABLE_PREFIX": f"t{suffix}",
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": str(tmp_path / "work"),
    }


def test_settings_read_references_as_not_configured(azurite, tmp_path) -> None:
    env = env_with_references(azurite, tmp_path)
    settings = Settings.from_env(env)
    assert settings.api_keys == ""
    assert settings.storage_connection_string == azurite.connection_string
    assert settings.unresolved_secrets == (
        "FOUNDRY_SERVICE_API_KEYS",
        "FOUNDRY_SERVICE_ANTHROPIC_API_KEY",
        "AzureWebJobsStorage",
    )
    assert ProxySettings.from_env(env).api_key == ""
    # Storage given only as an unresolved reference is unconfigured storage, not a bad string.
    del env["FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING"]
    with pytest.raises(ConfigurationError, match="job storage is not configured"):
        Settings.from_env(env)
    env["FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT"] = "jobsacct"  # managed identity still works
    settings = Settings.from_env(env)
    assert settings.storage_connection_string is None
    assert settings.storage_account == "jobsacct"
    assert set(SECRET_SETTINGS) >= set(settings.unresolved_secrets)


@pytest.fixture
def unresolved(azurite, tmp_path, durable_host) -> Iterator[tuple[Api, Services]]:
    """The app with its secrets unresolved, built from the environment as in Azure."""
    svc = Services.build(Settings.from_env(env_with_references(azurite, tmp_path)))
    use_services(svc)
    try:
        yield Api(FunctionHost(function_app.app, durable_host.binding)), svc
    finally:
        use_services(None)


def test_every_v1_call_is_refused(unresolved) -> None:
    api, _ = unresolved
    for method, path in V1_ROUTES:
        target = path.replace("{id}", "fj_01JXXXXXXXXXXXXXXXXXXXXXXX")
        body = submission() if (method, path) == ("POST", "/v1/jobs") else None
        for key in (API_KEY, ref("foundry-api-keys"), "", None):
            status, reply, headers = api.call(method, target, body=body, key=key)
            assert status == 401, (method, path, key, reply)
            assert reply["error"] == "unauthorized"
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert VAULT not in json.dumps(reply)


def test_healthz_is_degraded_and_names_the_settings_only(unresolved) -> None:
    api, _ = unresolved
    status, body, _ = api.call("GET", "/v1/healthz", key=None)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["reasons"] == [
        "FOUNDRY_SERVICE_API_KEYS is an unresolved Key Vault reference (not configured)",
        "FOUNDRY_SERVICE_ANTHROPIC_API_KEY is an unresolved Key Vault reference (not configured)",
        "AzureWebJobsStorage is an unresolved Key Vault reference (not configured)",
    ]
    assert body["queue_depth"] == 0 and body["workers"] == 3  # storage itself is fine
    assert VAULT not in json.dumps(body) and "SecretName" not in json.dumps(body)


def test_healthz_says_when_no_keys_are_set_at_all(api, services) -> None:
    services.settings = replace(services.settings, api_keys=" , ")
    _, body, _ = api.call("GET", "/v1/healthz", key=None)
    assert body["status"] == "degraded"
    assert body["reasons"] == ["FOUNDRY_SERVICE_API_KEYS has no keys: every /v1 call is refused"]


def test_llm_proxy_refuses_without_contacting_upstream(unresolved, monkeypatch) -> None:
    _, svc = unresolved
    dead_upstream = f"http://127.0.0.1:{free_port()}"  # a forward would be a 502, not a 503
    # The proxy container builds itself from the environment, as in Azure.
    assert svc.settings.storage_connection_string is not None
    monkeypatch.setenv(
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING", svc.settings.storage_connection_string
    )
    monkeypatch.setenv("FOUNDRY_SERVICE_TABLE_PREFIX", svc.settings.table_prefix)
    monkeypatch.setenv("FOUNDRY_SERVICE_ANTHROPIC_BASE_URL", dead_upstream)
    monkeypatch.setenv("FOUNDRY_SERVICE_ANTHROPIC_API_KEY", ref("anthropic-api-key"))
    served = ServedProxy(proxy_from_env)
    try:
        body = parse_submit(json.dumps(submission()).encode(), svc.settings)
        job = submit_job(svc, body, actor="test").job  # queued: in flight for the proxy
        token = svc.tokens.mint(job.job_id, expires_at=datetime.now(UTC) + timedelta(hours=1))
        message = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": []}
        answer = httpx.post(
            f"{served.url}/v1/messages", json=message, headers={"Authorization": f"Bearer {token}"}
        )
        health = httpx.get(f"{served.url}/healthz").json()
    finally:
        served.close()
    status, reply = answer.status_code, answer.json()
    assert status == 503, reply
    assert reply["error"] == "proxy_unconfigured"
    assert VAULT not in json.dumps(reply)
    assert health["status"] == "degraded" and health["reason"] == "llm_credential_missing"
    assert VAULT not in json.dumps(health)


def test_one_clear_log_line_at_start_naming_settings_not_values() -> None:
    env = {
        **os.environ,
        "FOUNDRY_SERVICE_API_KEYS": ref("foundry-api-keys"),
        "FOUNDRY_SERVICE_ANTHROPIC_API_KEY": f" {ref('anthropic-api-key')} ",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "",
    }
    env.pop("AzureWebJobsStorage", None)
    env.pop("FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING", None)
    started = subprocess.run(
        [sys.executable, "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in started.stderr.splitlines() if "Key Vault" in line]
    assert len(lines) == 1, started.stderr
    assert lines[0].startswith("ERROR:foundry.settings:")
    assert "FOUNDRY_SERVICE_API_KEYS, FOUNDRY_SERVICE_ANTHROPIC_API_KEY" in lines[0]
    assert VAULT not in started.stderr and "SecretName" not in started.stderr


def test_nothing_is_logged_when_every_secret_resolved(caplog) -> None:
    assert log_unresolved_secrets({"FOUNDRY_SERVICE_API_KEYS": "k1,k2"}) == ()
    assert caplog.records == []
