"""``python -m devhost.server`` serves the streaming LLM proxy too: the deployed ASGI app on the
deployed server, on its own loopback port, started and stopped with the dev server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.azurite import free_port
from tests.conftest import API_KEYS, submission
from tests.fake_llm_upstream import REAL_KEY
from tests.proxy.harness import message_events

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1.5


@pytest.fixture
def dev_server(settings, upstream, tmp_path) -> Iterator[tuple[str, str]]:
    port, proxy_port = free_port(), free_port()
    env = {
        **os.environ,
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": settings.storage_connection_string,
        "FOUNDRY_SERVICE_TABLE_PREFIX": settings.table_prefix,
        "FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER": settings.storage_container,
        "FOUNDRY_SERVICE_API_KEYS": API_KEYS,
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": str(tmp_path / "work"),
        "FOUNDRY_SERVICE_ANTHROPIC_BASE_URL": upstream.url,
        "FOUNDRY_SERVICE_ANTHROPIC_API_KEY": REAL_KEY,
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "devhost.server", "--port", str(port)),
            *("--proxy-port", str(proxy_port), "--maintenance-every", "3600"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base, proxy = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{proxy_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{proxy}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        yield base, proxy
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(5)
            log.close()
    output = (tmp_path / "server.log").read_text()
    assert f"LLM proxy on {proxy}/v1/messages" in output
    assert REAL_KEY not in output
    assert server.returncode == 0, output


def test_the_dev_server_streams_llm_replies_past_the_limit(
    api, services, upstream, dev_server
) -> None:
    base, proxy = dev_server
    assert httpx.get(f"{base}/v1/healthz").status_code == 200
    assert httpx.post(f"{base}/v1/messages", json={}).status_code == 404  # not a function
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    token = services.tokens.mint(
        accepted["job_id"], expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    sent = upstream.stream_events(
        message_events(input_tokens=5, output_tokens=7, text_deltas=13), interval=0.2
    )
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream(
        "POST",
        f"{proxy}/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 100, "stream": True, "messages": []},
        headers={"authorization": f"Bearer {token}"},
        timeout=LIMIT,
    ) as reply:
        assert reply.status_code == 200
        arrivals.extend((time.monotonic(), chunk) for chunk in reply.iter_raw())
    (seen,) = upstream.exchanges
    assert b"".join(chunk for _, chunk in arrivals) == sent
    assert seen.finished_at is not None and seen.finished_at - seen.received_at > 2 * LIMIT
    assert arrivals[0][0] < seen.finished_at - LIMIT
    usage = services.jobs.get_job(accepted["job_id"]).detail["proxy_usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (5, 7)
