"""The local service keeps its data across a crash: the dev server runs as a real child process
with persistent Azurite and a state directory, is SIGKILLed mid-build, and started again.

Chosen behaviour (README, "Local service"): builds do not outlive the service. A build that was
running when the server died fails with ``build_crashed`` and a message that says so; every
other job resumes where its orchestration was (a queued one goes on to ``ready``). Nothing of the
first server survives it: Azurite, runner and builder die with it (``PR_SET_PDEATHSIG``), and what
escaped every process group is killed by the next start, found by pid records and markers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.ports import free_port
from shared.backends import processes
from shared.backends.local import JOB_MARKER, PREVIEW_RECORD, RUNNER_RECORD
from shared.backends.processes import ProcessRecord
from tests.conftest import submission

ROOT = Path(__file__).resolve().parents[2]
ESCAPING_BUILDER = ROOT / "tests" / "escaping_builder.py"
pytestmark = pytest.mark.azurite  # starts its own emulator (through the dev server)


def builder_of(runner_pid: int, job_dir: Path) -> int:
    """The builder: the job's marked process whose parent is the build runner."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for pid, marked in processes.processes_with_env(JOB_MARKER).items():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if marked == str(job_dir) and parent == runner_pid:
                return pid
        time.sleep(0.05)
    raise AssertionError("the build runner started no builder")


class DevServer:
    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp, self.port, self.proxy_port = tmp, port, free_port()
        self.state, self.azurite = tmp / "state", tmp / "azurite"
        self.base = f"http://127.0.0.1:{port}"
        self.logs: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDRY_")}
        env.update(
            {
                "FOUNDRY_SERVICE_MAX_CONCURRENT_BUILDS": "1",
                "FOUNDRY_SERVICE_POLL_MAX_SECS": "2",
                "FOUNDRY_SERVICE_LOCAL_BUILDER_COMMAND": f"{sys.executable} {ESCAPING_BUILDER}",
                "FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE": "0 */1 * * * *",
            }
        )
        log = self.tmp / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "devhost.server", "--port", str(self.port),
                    "--proxy-port", str(self.proxy_port),
                    "--state-dir", str(self.state), "--azurite", "--azurite-dir",
                    str(self.azurite), "--maintenance-every", "2",
                ],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/v1/healthz", timeout=2).json()["status"] == "ok":
                    return
            time.sleep(0.2)
        raise AssertionError("the dev server did not come up:\n" + log.read_text())

    def setting(self, name: str) -> str:
        for line in (self.state / "settings.env").read_text().splitlines():
            if line.startswith(name + "="):
                return line.split("=", 1)[1]
        raise KeyError(name)

    def record(self, name: str) -> ProcessRecord:
        found = ProcessRecord.read(self.state / "pids" / f"{name}.json")
        assert found is not None, name
        return found


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path, free_port())
    yield server
    # Whatever happened, stop everything this test started, by recorded pid only.
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
    for job_dir in (server.state / "work").glob("fj_*"):
        for name in (RUNNER_RECORD, PREVIEW_RECORD):
            record = ProcessRecord.read(job_dir / name)
            if record is not None:
                record.signal_group(signal.SIGKILL)
        processes.kill_marked(JOB_MARKER, str(job_dir))
    azurite = ProcessRecord.read(server.state / "pids" / "azurite.json")
    if azurite is not None and azurite.is_same_process():
        azurite.signal_group(signal.SIGKILL)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_killed_dev_server_restarts_with_its_jobs_and_leaves_nothing_behind(
    dev_server: DevServer,
) -> None:
    dev_server.start()
    key = dev_server.setting("FOUNDRY_SERVICE_API_KEYS")  # generated once, never printed
    system_key = dev_server.setting("FOUNDRY_DEVHOST_SYSTEM_KEY")
    with httpx.Client(
        base_url=dev_server.base, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:
        restart_scenario(dev_server, http, key, system_key)


def restart_scenario(dev_server: DevServer, http: httpx.Client, key: str, system_key: str) -> None:
    assert http.get("/v1/jobs", headers={"Authorization": "Bearer dev-key"}).status_code == 401

    def job(job_id: str) -> dict:
        response = http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    slow = http.post("/v1/jobs", json=submission("slow", spec_md="# S\n<!-- foundry:sleep=60 -->"))
    queued = http.post("/v1/jobs", json=submission("queued-one", idempotency_key="q"))
    assert slow.status_code == 202 and queued.status_code == 202
    slow_id, queued_id = slow.json()["job_id"], queued.json()["job_id"]
    work = dev_server.state / "work" / slow_id
    wait_until(lambda: (work / "work" / "escaped.pid").exists(), 60, "the slow build")
    # Builders are told the proxy on the port it really listens on (not a default).
    proxy_url = f"http://127.0.0.1:{dev_server.proxy_port}"
    assert (work / "work" / "proxy_url.txt").read_text() == proxy_url
    assert job(queued_id)["status"] == "queued"

    first = {
        "server": dev_server.process.pid,
        "azurite": dev_server.record("azurite").pid,
        "runner": ProcessRecord.read(work / RUNNER_RECORD).pid,
        "builder": builder_of(ProcessRecord.read(work / RUNNER_RECORD).pid, work),
        "escaped": int((work / "work" / "escaped.pid").read_text()),
    }
    assert all(processes.is_running(pid) for pid in first.values()), first

    dev_server.process.send_signal(signal.SIGKILL)
    dev_server.process.wait(10)
    # Azurite, runner and builder die with the server (the kernel's parent-death signal).
    for name in ("azurite", "runner", "builder"):
        wait_until(lambda n=name: not processes.is_running(first[n]), 10, f"{name} to die")
    assert processes.is_running(first["escaped"])  # outside every group: the restart's job

    dev_server.start()
    # The start-up cleanup found what escaped; nothing of the first server is left.
    left = {name: pid for name, pid in first.items() if processes.is_running(pid)}
    assert left == {}, left
    assert dev_server.record("azurite").pid != first["azurite"]
    azurite_dir = str(dev_server.azurite.resolve())
    holders = [
        pid
        for pid in _all_pids()
        if azurite_dir in processes.cmdline(pid)
        and processes.is_running(pid)
        and pid != dev_server.process.pid  # its own command line names the directory
    ]
    assert holders == [dev_server.record("azurite").pid]

    # The jobs are still there (persistent Azurite); the orchestrations resumed.
    wait_until(lambda: job(slow_id)["status"] == "failed", 60, "the interrupted build to fail")
    failed = job(slow_id)
    assert failed["error"]["code"] == "build_crashed"
    assert "service restarted" in failed["error"]["message"]
    wait_until(lambda: job(queued_id)["status"] == "ready", 120, "the queued job to get ready")
    status = httpx.get(
        f"{dev_server.base}/runtime/webhooks/durabletask/instances/{queued_id}",
        headers={"x-functions-key": system_key},
    )
    assert status.json()["runtimeStatus"] == "Completed"
    admin_env = (dev_server.state / "admin.env").read_text()
    assert f"FOUNDRY_ADMIN_DURABLE_KEY='{system_key}'" in admin_env
    assert f"FOUNDRY_ADMIN_API_KEY='{key}'" in admin_env

    logs = "\n".join(log.read_text() for log in dev_server.logs)
    assert key not in logs and system_key not in logs
    assert "not shown" in logs


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def test_settings_records_are_json(tmp_path: Path) -> None:
    """Guard: the pid records the restart relies on are plain JSON (readable by operators)."""
    record = ProcessRecord.capture(os.getpid(), command_hint="python")
    assert record is not None
    record.write(tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text())["pid"] == os.getpid()
