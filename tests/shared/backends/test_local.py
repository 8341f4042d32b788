"""Cancel, failure, timeout, the reconciler's fail and a crash of the service leave no process
of the job behind. The builder here starts a grandchild that escapes its process group and
session and ignores SIGTERM; after each outcome /proc is searched for the job's processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from devhost.worker import run_in_worker
from shared.backends import processes
from shared.backends.local import (
    JOB_MARKER,
    RUNNER_RECORD,
    kill_stale_builds,
    leftover_build_processes,
)
from shared.backends.processes import ProcessRecord
from shared.domain.models import JobStatus
from tests.conftest import make_settings, submission
from tests.local_builds import settle
from timers.sweeps import run_maintenance

ROOT = Path(__file__).resolve().parents[3]
ESCAPING_BUILDER = ROOT / "tests" / "escaping_builder.py"
SLOW = "# Slow\n<!-- foundry:sleep=30 -->\n"


@pytest.fixture
def settings(azurite, tmp_path):
    return make_settings(
        azurite, tmp_path, local_builder_command=f"{sys.executable} {ESCAPING_BUILDER}"
    )


def job_processes(services, job_id: str) -> list[int]:
    """Live processes carrying the job's marker (what the backend must leave none of)."""
    job_dir = str(services.backend.job_dir(job_id))
    return sorted(p for p, d in processes.processes_with_env(JOB_MARKER).items() if d == job_dir)


def alive(pid: int) -> bool:
    return processes.is_running(pid)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def escaped_pid(services, job_id: str) -> int:
    """The grandchild's pid, once the builder has started it (and it carries the marker)."""
    path = services.backend.job_dir(job_id) / "work" / "escaped.pid"
    wait_for(lambda: path.exists() and path.read_text().strip())
    pid = int(path.read_text())
    assert alive(pid) and pid in job_processes(services, job_id)
    return pid


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def builder_pid(services, job_id: str, runner_pid: int) -> int:
    """The builder: the job's marked process the build runner started."""
    found: list[int] = []

    def started() -> bool:
        found[:] = [p for p in job_processes(services, job_id) if parent_of(p) == runner_pid]
        return bool(found)

    wait_for(started)
    return found[0]


def start_building(api, driver, services, body) -> tuple[str, int]:
    status, accepted, _ = api.call("POST", "/v1/jobs", body=body)
    assert status == 202, accepted
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    return job_id, escaped_pid(services, job_id)


def assert_no_process_left(services, job_id: str, *pids: int) -> None:
    wait_for(lambda: not job_processes(services, job_id), timeout=5)
    assert [p for p in pids if alive(p)] == []


def test_cancel_leaves_no_process(api, driver, services) -> None:
    job_id, escaped = start_building(api, driver, services, submission("cancel-me", spec_md=SLOW))
    runner = ProcessRecord.read(services.backend.job_dir(job_id) / RUNNER_RECORD)
    assert runner and alive(runner.pid)
    builder = builder_pid(services, job_id, runner.pid)
    assert api.call("POST", f"/v1/jobs/{job_id}/cancel")[0] == 200
    assert driver.run_to_completion(job_id).output["status"] == "canceled"
    assert_no_process_left(services, job_id, escaped, runner.pid, builder)


def test_failure_leaves_no_process(api, driver, services) -> None:
    body = submission("crashy", spec_md="# C\n<!-- foundry:crash -->\n")
    status, accepted, _ = api.call("POST", "/v1/jobs", body=body)
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    escaped = escaped_pid(services, job_id)
    inst = driver.run_to_completion(job_id, between_timers=settle(services, job_id))
    assert inst.output["status"] == "failed"
    assert services.jobs.get_job(job_id).error_code == "build_crashed"
    assert_no_process_left(services, job_id, escaped)


def test_timeout_leaves_no_process(api, driver, services) -> None:
    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "build_timeout_secs": 60}
    )
    job_id, escaped = start_building(api, driver, services, submission("slow", spec_md=SLOW))
    inst = driver.run_to_completion(job_id, between_timers=lambda: time.sleep(0.01))
    assert inst.output["status"] == "failed"
    assert services.jobs.get_job(job_id).error_code == "build_timeout"
    assert_no_process_left(services, job_id, escaped)


def test_the_reconcilers_fail_leaves_no_process(api, driver, client, services) -> None:
    job_id, escaped = start_building(api, driver, services, submission("lost", spec_md=SLOW))
    driver.terminate(job_id, "operator")  # the orchestration is gone; the build still runs
    assert job_processes(services, job_id)
    report = run_in_worker(run_maintenance(services, client))
    assert report.repaired == [job_id]
    assert services.jobs.get_job(job_id).status is JobStatus.FAILED
    assert_no_process_left(services, job_id, escaped)


SERVICE = """
import sys, time
from shared.config.settings import Settings
from shared.services import Services
svc = Services.build(Settings.from_env())
svc.backend.start_build(svc.jobs.get_job(sys.argv[1]), proxy_token="token-of-a-crashing-service")
print("started", flush=True)
time.sleep(600)
"""


def test_a_service_crash_leaves_no_process(api, client, services, settings) -> None:
    """The service is SIGKILLed mid-build: runner and builder die with it (PR_SET_PDEATHSIG);
    the escaped grandchild is found by its marker and killed by the orphan sweep once the job
    is no longer live (or, after a restart, by the dev server's start-up cleanup)."""
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission("crash", spec_md=SLOW))
    job_id = accepted["job_id"]
    env = {
        **os.environ,
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": settings.storage_connection_string,
        "FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER": settings.storage_container,
        "FOUNDRY_SERVICE_TABLE_PREFIX": settings.table_prefix,
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": settings.local_work_dir,
        "FOUNDRY_SERVICE_LOCAL_BUILDER_COMMAND": settings.local_builder_command,
    }
    service = subprocess.Popen(
        [sys.executable, "-c", SERVICE, job_id], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        assert service.stdout is not None and service.stdout.readline() == b"started\n"
        escaped = escaped_pid(services, job_id)
        job_dir = services.backend.job_dir(job_id)
        runner = ProcessRecord.read(job_dir / RUNNER_RECORD)
        assert runner and alive(runner.pid)
        builder = builder_pid(services, job_id, runner.pid)
    finally:
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        if service.stdout is not None:
            service.stdout.close()
    wait_for(lambda: not alive(runner.pid) and not alive(builder), timeout=5)
    assert job_processes(services, job_id) == [escaped]  # only what escaped every group
    assert leftover_build_processes(services.backend.root) == {escaped: str(job_dir)}
    # The job is live (queued): the sweep leaves its processes alone...
    assert run_in_worker(run_maintenance(services, client)).orphans_removed == []
    assert alive(escaped)
    # ...and once it is not (here: marked failed by someone who could not clean up), kills them.
    services.jobs.transition(job_id, JobStatus.FAILED, reason="test: service lost the job")
    report = run_in_worker(run_maintenance(services, client))
    assert report.orphans_removed == [job_id]
    assert_no_process_left(services, job_id, escaped)


def test_start_up_cleanup_kills_only_this_roots_leftovers(tmp_path: Path) -> None:
    root = (tmp_path / "work").resolve()
    other = (tmp_path / "elsewhere").resolve()
    code = "import time; time.sleep(60)"
    mine = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, JOB_MARKER: str(root / "fj_A")},
        start_new_session=True,
    )
    theirs = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, JOB_MARKER: str(other / "fj_B")},
        start_new_session=True,
    )
    try:
        wait_for(lambda: mine.pid in leftover_build_processes(root))
        assert theirs.pid not in leftover_build_processes(root)
        assert kill_stale_builds(root) == [mine.pid]
        assert mine.wait(10) == -signal.SIGKILL
        assert theirs.poll() is None
    finally:
        for child in (mine, theirs):
            if child.poll() is None:
                child.kill()
            child.wait(10)


def test_a_record_for_a_reused_pid_kills_nothing(tmp_path: Path) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        # Right after exec the kernel may show an empty command line for a moment: wait it out,
        # so the hint comparison below is about the command, not that window.
        wait_for(lambda: "time.sleep" in processes.cmdline(bystander.pid))
        real = ProcessRecord.capture(bystander.pid, command_hint="time.sleep")
        assert real is not None and real.is_same_process()
        reused = ProcessRecord(
            real.pid, real.pgid, real.start_ticks - 1, real.boot_id, real.command_hint
        )
        assert not reused.is_same_process()
        assert reused.signal_group(signal.SIGKILL) is False
        other_command = ProcessRecord(
            real.pid, real.pgid, real.start_ticks, real.boot_id, "azurite"
        )
        assert other_command.signal_group(signal.SIGKILL) is False
        time.sleep(0.2)
        assert bystander.poll() is None
        assert real.signal_group(signal.SIGKILL) is True
        assert bystander.wait(10) == -signal.SIGKILL
    finally:
        if bystander.poll() is None:
            bystander.kill()
        bystander.wait(10)


def test_a_finished_build_leaves_no_process(api, driver, services) -> None:
    """Even a successful builder's leftovers die when it exits."""
    status, accepted, _ = api.call("POST", "/v1/jobs", body=submission("fine"))
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    escaped = escaped_pid(services, job_id)
    inst = driver.run_to_completion(
        job_id, limit=timedelta(hours=3), between_timers=settle(services, job_id)
    )
    assert inst.output["status"] == "ready", inst.output
    wait_for(lambda: not alive(escaped), timeout=5)
    assert job_processes(services, job_id) == []
