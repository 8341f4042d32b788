"""The grant and the environment the runner reads, exactly as the service produces them."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from runner.config import ConfigError, RunnerConfig
from runner.grant import INPUTS, LEGACY_INPUTS, OPTIONAL, REQUIRED, GrantError, parse_grant
from shared.storage.job_blobs import BUILDER_GRANT, JobBlobs, builder_grant


def test_the_service_grants_every_blob_the_runner_uses(job_blobs: JobBlobs) -> None:
    assert set(BUILDER_GRANT) == {*REQUIRED, INPUTS, *LEGACY_INPUTS, *OPTIONAL}
    raw = builder_grant(job_blobs, "fj_X", ttl_secs=60)
    grant = parse_grant(raw, "fj_X")
    assert set(grant.urls) == set(BUILDER_GRANT)
    signatures = grant.signatures()
    assert signatures
    for url in grant.urls.values():
        sig = url.split("sig=", 1)[1].split("&", 1)[0]
        assert sig in signatures and unquote(sig) in signatures


def test_a_grant_for_another_job_or_without_inputs_is_refused(job_blobs: JobBlobs) -> None:
    raw = builder_grant(job_blobs, "fj_X", ttl_secs=60)
    with pytest.raises(GrantError) as wrong_job:
        parse_grant(raw, "fj_Y")
    urls = json.loads(raw)
    del urls["inputs"]
    parse_grant(json.dumps(urls), "fj_X")  # a grant of the earlier layout: the two files
    del urls["tasks_md"]
    with pytest.raises(GrantError) as missing:
        parse_grant(json.dumps(urls), "fj_X")
    assert "inputs" in str(missing.value)
    for error in (wrong_job.value, missing.value):
        assert "sig=" not in str(error) and "http" not in str(error)  # never echo a URL
    for bad in ("", "[]", '{"inputs": 3}', '{"inputs": "file:///etc/passwd"}', "{"):
        with pytest.raises(GrantError):
            parse_grant(bad, "fj_X")


def test_the_builder_never_gets_the_grant(job_blobs: JobBlobs, tmp_path: Path) -> None:
    env = {
        "FOUNDRY_JOB_ID": "fj_X",
        "FOUNDRY_STORAGE_GRANT": builder_grant(job_blobs, "fj_X", ttl_secs=60),
        "FOUNDRY_BUILDER_COMMAND": "foundry run --output-format 'json-stream'",
        "FOUNDRY_RUNNER_WORKDIR": str(tmp_path),
        "FOUNDRY_RUNNER_TIMEOUT_SECS": "90",
        "ANTHROPIC_AUTH_TOKEN": "fb_01JTOKENTOKENTOKENTOKENTOK",
        "ANTHROPIC_BASE_URL": "http://proxy",
        "FOUNDRY_EXAMPLE_BUILDER_DELAY": "1",
    }
    config = RunnerConfig.from_env(env)
    assert config.builder_command == ["foundry", "run", "--output-format", "json-stream"]
    assert config.timeout_secs == 90
    assert config.workspace == tmp_path
    assert set(config.builder_env) == {
        "FOUNDRY_JOB_ID",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "FOUNDRY_EXAMPLE_BUILDER_DELAY",
    }
    assert "fb_01JTOKENTOKENTOKENTOKENTOK" in config.secrets
    assert "FOUNDRY_STORAGE_GRANT" not in repr(config) and "sig=" not in repr(config)
    for name, value in [
        ("FOUNDRY_JOB_ID", ""),
        ("FOUNDRY_STORAGE_GRANT", ""),
        ("FOUNDRY_BUILDER_COMMAND", ""),
        ("FOUNDRY_BUILDER_COMMAND", "unbalanced 'quote"),
        ("FOUNDRY_RUNNER_FLUSH_MS", "soon"),
        ("FOUNDRY_BUILDER_STREAM_FILE", "../escape.jsonl"),
    ]:
        with pytest.raises(ConfigError) as refused:
            RunnerConfig.from_env({**env, name: value})
        assert name in str(refused.value)
