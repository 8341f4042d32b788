"""The dev server as a user starts it (``python -m devhost.server``), in a child process of the
benchmark, against the benchmark's Azurite: started, waited for, and stopped with its tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devhost.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
READY_TIMEOUT_SECS = 30.0


@dataclass(frozen=True)
class DevServer:
    base: str
    pid: int
    work_dir: Path
    table_prefix: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}


@contextmanager
def dev_server(connection: str, scratch: Path, **settings: str) -> Iterator[DevServer]:
    """A dev server on a free loopback port with its own tables and work directory;
    ``settings`` are ``FOUNDRY_SERVICE_*`` values by their suffix (``MAX_CONCURRENT_BUILDS``)."""
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    work_dir = scratch / "work"
    table_prefix = "bench" + uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "FOUNDRY_SERVICE_API_KEYS": KEY,
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": connection,
        "FOUNDRY_SERVICE_TABLE_PREFIX": table_prefix,
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": str(work_dir),
        **{f"FOUNDRY_SERVICE_{name}": value for name, value in settings.items()},
    }
    base = f"http://127.0.0.1:{port}"
    with (scratch / "server.log").open("wb") as server_log:
        server = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter runs the dev server
            [sys.executable, "-m", "devhost.server", "--port", str(port), "--proxy-port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
        try:
            _wait_healthy(base, server)
            yield DevServer(base=base, pid=server.pid, work_dir=work_dir, table_prefix=table_prefix)
        finally:
            server.terminate()  # the server stops its builders (they die with it) on SIGTERM
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the dev server exited with {server.returncode}")
        try:
            if httpx.get(base + "/v1/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the dev server at {base} did not become healthy")
