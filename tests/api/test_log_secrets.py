"""A builder that prints its proxy token or a SAS URL: /logs and /logs?cursor= never serve them,
whichever way the log reached storage (here the local backend, which stores what the builder
printed as it is)."""

from __future__ import annotations

import re
import shlex
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from shared.config.settings import Settings
from tests.azurite import Azurite
from tests.conftest import make_settings, submission
from tests.local_builds import settle
from tests.runner.harness import EXAMPLE_BUILDER

SAS = "https://acct.blob.core.windows.net/c/jobs/x/logs/stream.jsonl?sv=2024&sp=r&sig=SiGnAtUrE0123456789abcdefXYZ%3D"
LEAKY = (
    'echo "{\\"event\\":\\"note\\",\\"token\\":\\"$ANTHROPIC_AUTH_TOKEN\\"}"; '
    f'echo "fetching {SAS} with Authorization: Bearer $ANTHROPIC_AUTH_TOKEN"; '
    f"exec {shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLE_BUILDER))}"
)


@pytest.fixture
def settings(azurite: Azurite, tmp_path: Path) -> Settings:
    return make_settings(azurite, tmp_path, local_builder_command=shlex.join(["sh", "-c", LEAKY]))


def test_the_runner_stores_no_token_or_signature(api, driver, services) -> None:
    """First line: the build runner scrubs what the builder prints before it is stored."""
    status, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    assert status == 202, accepted
    job_id = accepted["job_id"]
    driver.run_to_completion(
        job_id, limit=timedelta(hours=1), between_timers=settle(services, job_id)
    )
    stored = services.blobs.read_log(job_id).decode()
    assert '"event":"note"' in stored  # the leaky lines were stored, scrubbed
    assert re.search(r"fb_[0-9A-Z]{26}", stored) is None
    assert "SiGnAtUrE0123456789abcdefXYZ" not in stored
    _, text, _ = api.call("GET", f"/v1/jobs/{job_id}/logs")
    assert re.search(r"fb_[0-9A-Z]{26}", text) is None


def test_logs_never_serve_a_token_or_a_signature(api, driver, services) -> None:
    """Second line: a log that reached storage unscrubbed (a builder that bypassed the runner)
    is still never served with its secrets."""
    status, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    assert status == 202, accepted
    job_id = accepted["job_id"]
    token = "fb_01JLEAKLEAKLEAKLEAKLEAKLEA"
    leaked = (
        f'{{"event":"note","token":"{token}"}}\nfetching {SAS} with Authorization: Bearer {token}\n'
    ).encode()
    services.blobs.ensure_log(job_id)
    services.blobs.append_log(job_id, leaked, at_offset=0)
    stored = services.blobs.read_log(job_id).decode()
    assert token in stored  # this path stored it as it was
    _, text, _ = api.call("GET", f"/v1/jobs/{job_id}/logs")
    _, page, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?cursor=0")
    _, tail, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?tail=100")
    served = [text, str(page["events"]), tail]
    for body in served:
        assert token not in body
        assert "SiGnAtUrE0123456789abcdefXYZ" not in body
        assert "[redacted]" in body
    assert len(text.splitlines()) == len(stored.rstrip("\n").splitlines())  # no line lost
    assert page["events"][0] == {"event": "note", "token": "[redacted]"}
