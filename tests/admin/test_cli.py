"""The operator CLI end to end: reads against Azurite, changes through the dev server's HTTP
routes (/v1, the Durable management API, the host's /admin/functions) on loopback, and the
durable orchestrations stepped by the in-process driver."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.data.tables import UpdateMode

import function_app
from admin import cli
from admin.exits import Exit
from admin.webhook_client import WebhookDurableClient
from devhost.binding import client_binding
from devhost.http_host import FunctionHost
from devhost.loopback import LoopbackServer, free_port
from devhost.server import build_app
from shared.backends.base import StepState, StepStatus
from shared.domain.ids import newest_first_key
from shared.domain.models import JobStatus
from tests.conftest import API_KEY, READ_KEY, Api, submission
from tests.scripted_backend import ScriptedBackend

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


SYSTEM_KEY = "test-system-key-0123456789"


@pytest.fixture
def dev_server(driver) -> Iterator[str]:
    """The dev server's aiohttp app (function routes, Durable webhooks, admin API); functions
    reach the webhooks through the real durable client, with the system key."""
    port = free_port()
    host = FunctionHost(function_app.app, client_binding(f"http://127.0.0.1:{port}", SYSTEM_KEY))
    with LoopbackServer(build_app(host, driver, system_key=SYSTEM_KEY), port=port) as server:
        yield server.base_url


@pytest.fixture(autouse=True)
def admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's environment: an API key with jobs:write and the durable system key,
    nothing else inherited."""
    for name in ("FOUNDRY_ADMIN_APP_URL", "FOUNDRY_ADMIN_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FOUNDRY_ADMIN_API_KEY", API_KEY)
    monkeypatch.setenv("FOUNDRY_ADMIN_DURABLE_KEY", SYSTEM_KEY)


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


def run_cli(services, *argv: str, client=None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), services=services, client=client, out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue())


def in_background(services, *argv: str) -> tuple[Future[int], io.StringIO]:
    out = io.StringIO()
    pool = ThreadPoolExecutor(1)
    future = pool.submit(cli.main, list(argv), services=services, out=out, err=io.StringIO())
    pool.shutdown(wait=False)
    return future, out


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ready_job(api: Api, driver, services, app_name: str = "wishful-stickers") -> str:
    services.backend = ScriptedBackend()
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission(app_name))
    driver.run_to_completion(accepted["job_id"])
    return str(accepted["job_id"])


# -- reads -----------------------------------------------------------------------------------
def test_list_show_logs(api: Api, driver, services, dev_server) -> None:
    job_id = ready_job(api, driver, services)
    run = run_cli(services, "list")
    assert run.code == 0
    assert job_id in run.out and "ready" in run.out and ISO_Z.search(run.out)
    listed = run_cli(services, "list", "--json").json()
    assert [j["job_id"] for j in listed["jobs"]] == [job_id]
    durable = WebhookDurableClient(dev_server, system_key=SYSTEM_KEY)
    report = run_cli(services, "show", job_id, "--json", client=durable)
    report = report.json()
    assert report["job"]["status"] == "ready"
    assert [h["to_status"] for h in report["history"]][-1] == "ready"
    assert report["orchestration"]["runtime_status"] == "Completed"
    run = run_cli(services, "logs", job_id, "--tail", "1", "--raw")
    assert json.loads(run.out.splitlines()[0])["schema_version"] == 3
    run = run_cli(services, "logs", job_id, "--tail", "1", "--raw", "--follow")  # job has ended
    assert json.loads(run.out.splitlines()[0])["schema_version"] == 3
    assert run.code == 0  # followed to the end, and it ended ready
    missing = run_cli(services, "show", "fj_01JNOPENOPENOPENOPENOPENOP")
    assert missing.code == 3
    assert missing.out == "" and "not found" in missing.err


def test_show_is_a_human_summary_with_iso_times(api, driver, services, dev_server) -> None:
    job_id = ready_job(api, driver, services)
    run = run_cli(services, "--app-url", dev_server, "show", job_id)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split() == ["job", job_id, "ready", "100%"]
    fields = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    for label in ("created", "started", "finished"):
        assert ISO_Z.search(fields[label]), fields[label]
    assert "took" in fields["finished"]
    assert "https://wishful-stickers.example.test" in fields["preview"]
    assert "Completed (phase ready)" in fields["orchestration"]
    assert "acme/wishful-stickers" in fields["app"] and "alice" in fields["app"]
    history = lines[lines.index("history") + 1 :]
    assert [h.split()[1:4] for h in history][:2] == [
        ["(new)", "->", "queued"],
        ["queued", "->", "building"],
    ]
    assert all(ISO_Z.fullmatch(h.split()[0]) for h in history)
    assert "{" not in run.out  # text, not JSON


def test_logs_renders_events_and_the_final_status(api, driver, services) -> None:
    job_id = ready_job(api, driver, services)
    run = run_cli(services, "logs", job_id)
    assert run.code == 0
    assert run.out.splitlines() == [
        "stage   implement started: BUILD T1 (model m)",
        "tasks   1/2 done, 0 in progress",
        "cost    $0.50 so far (+$0.50; 10 in / 5 out tokens)",
        "report  1/1 tasks done, cost $0.75, findings high 0 medium 1 low 0",
        run.out.splitlines()[-1],
    ]
    final = run.out.splitlines()[-1]
    assert final.startswith("final: ready after ")
    assert "preview https://wishful-stickers.example.test until " in final
    assert ISO_Z.search(final) and "cost $0.75" in final
    document = run_cli(services, "logs", job_id, "--json").json()
    assert document["job"]["status"] == "ready"
    assert [e.get("event") for e in document["events"]] == ["stage_started", "counts", "cost", None]


def runner_notice(api: Api, backend: ScriptedBackend, job_id: str, event: str) -> None:
    """What the build runner posts with its job token: ``progress`` or ``finished``."""
    status, body, _ = api.call(
        "POST",
        f"/v1/jobs/{job_id}/build-events",
        body={"event": event},
        key=backend.tokens_seen[-1],
    )
    assert status < 300, body


@pytest.mark.parametrize("outcome", ["ready", "failed"])
def test_logs_follow_shows_progress_then_one_final_line(api, driver, services, outcome) -> None:
    backend = ScriptedBackend(auto=False)
    services.backend = backend
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    future, out = in_background(services, "logs", job_id, "--follow", "--interval", "0.05")
    wait_for(lambda: "progress:" in out.getvalue(), "the first progress line")
    runner_notice(api, backend, job_id, "progress")  # the builder has written its first events
    wait_for(lambda: "progress: building 45%" in out.getvalue(), "the progress to move")
    if outcome == "ready":
        backend.auto = True
        backend.finish_build(job_id)
    else:
        backend.build_failure = StepStatus(StepState.FAILED, "builder exited 3")
    runner_notice(api, backend, job_id, "finished")
    driver.run_to_completion(job_id)
    code = future.result(timeout=30)
    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        "progress: building 5% | phase building | stage Build container starting",
        "stage   implement started: BUILD T1 (model m)",
        "tasks   1/2 done, 0 in progress",
        "cost    $0.50 so far (+$0.50; 10 in / 5 out tokens)",
    ]
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress[1] == (
        "progress: building 45% | phase building | stage BUILD T1 (implement) | tasks 1/2 done"
    )
    assert len(progress) == len(set(progress))  # printed when something moved, not every poll
    finals = [line for line in lines if line.startswith("final: ")]
    assert len(finals) == 1 and lines[-1] == finals[0]
    assert finals[0].startswith(f"final: {outcome} after ")
    if outcome == "ready":
        assert code == 0
        assert "report  1/1 tasks done" in out.getvalue()
    else:
        assert code == 1
        assert "build_crashed: builder exited 3" in finals[0]


# -- changes through the app -----------------------------------------------------------------
def test_health(dev_server, services) -> None:
    run = run_cli(services, "--app-url", dev_server, "health")
    assert run.code == 0 and run.out.startswith("ok: ")
    report = run_cli(services, "health", "--app-url", dev_server, "--json").json()
    assert report["status"] == "ok" and report["backend"]


def test_submit_then_follow_to_ready(driver, services, dev_server, tmp_path: Path) -> None:
    services.backend = ScriptedBackend()
    (tmp_path / "SPEC.md").write_text("# Canary\n\nA tiny app.\n")
    (tmp_path / "TASKS.md").write_text("- [ ] T1: a page\n")
    args = ["--app-url", dev_server, "--json", "submit", "--app-name", "canary-1", "--owner"]
    args += ["canary", "--org", "acme", "--spec", str(tmp_path / "SPEC.md"), "--tasks"]
    args += [str(tmp_path / "TASKS.md"), "--follow", "--interval", "0.05"]
    future, out = in_background(services, *args)
    wait_for(lambda: len(driver.instances) == 1, "the orchestration to start")
    driver.run_to_completion(next(iter(driver.instances)))
    assert future.result(timeout=30) == Exit.OK
    document = json.loads(out.getvalue())
    assert document["accepted"]["status"] == "queued"
    assert document["job"]["status"] == "ready"
    assert document["job"]["app_name"] == "canary-1"
    assert document["events"][-1]["schema_version"] == 3
    stored = services.jobs.get_job(document["job"]["job_id"])
    assert stored.owner == "canary" and stored.status is JobStatus.READY


def test_submit_refusals_map_to_exit_codes(api, driver, services, dev_server, tmp_path) -> None:
    spec = tmp_path / "SPEC.md"
    spec.write_text("# x\n")
    base = ["--app-url", dev_server, "submit", "--owner", "o", "--spec", str(spec)]
    base += ["--tasks", str(spec)]
    bad = run_cli(services, *base, "--app-name", "Not A Slug")
    assert bad.code == Exit.USAGE and "validation_error" in bad.err and bad.out == ""
    first = run_cli(services, *base, "--app-name", "taken", "--idempotency-key", "k1")
    assert first.code == 0, first.err
    clash = run_cli(services, *base, "--app-name", "taken", "--idempotency-key", "k2")
    assert clash.code == Exit.CONFLICT and "app_name_conflict" in clash.err
    missing = run_cli(services, *base, "--app-name", "x", "--tasks", str(tmp_path / "nope.md"))
    assert missing.code == Exit.USAGE and "nope.md" in missing.err


def test_cancel_signals_the_orchestration_over_http(api, driver, services, dev_server) -> None:
    backend = ScriptedBackend(auto=False)
    services.backend = backend
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=lambda i: i.custom_status.get("phase") == "build_wait")
    run = run_cli(services, "--app-url", dev_server, "cancel", job_id)
    assert run.code == 0, run.err
    inst = driver.run_to_completion(job_id)
    assert inst.output["status"] == "canceled"
    assert backend.resources == {}
    assert services.jobs.get_job(job_id).status is JobStatus.CANCELED
    again = run_cli(services, "--app-url", dev_server, "cancel", job_id, "--json")
    assert again.code == 6  # already ended
    error = json.loads(again.err)
    assert error["error"] == "validation_error" and error["exit_code"] == 6
    assert "terminal" in error["message"]
    assert again.out == ""


def test_keys_missing_or_refused_exit_4(services, dev_server, monkeypatch) -> None:
    monkeypatch.delenv("FOUNDRY_ADMIN_API_KEY")
    run = run_cli(services, "--app-url", dev_server, "cancel", "fj_01JNOPENOPENOPENOPENOPENOP")
    assert run.code == 4 and "FOUNDRY_ADMIN_API_KEY" in run.err
    monkeypatch.setenv("FOUNDRY_ADMIN_API_KEY", "not-a-key")
    run = run_cli(services, "--app-url", dev_server, "cancel", "fj_01JNOPENOPENOPENOPENOPENOP")
    assert run.code == Exit.AUTH and "unauthorized" in run.err
    monkeypatch.setenv("FOUNDRY_ADMIN_API_KEY", READ_KEY)  # lacks jobs:write
    run = run_cli(services, "--app-url", dev_server, "cancel", "fj_01JNOPENOPENOPENOPENOPENOP")
    assert run.code == Exit.AUTH and "forbidden" in run.err


def test_delete_preview(api, driver, services, dev_server) -> None:
    job_id = ready_job(api, driver, services)
    run = run_cli(services, "--app-url", dev_server, "delete-preview", job_id)
    assert run.code == 0, run.err
    assert services.jobs.get_job(job_id).status is JobStatus.EXPIRED
    again = run_cli(services, "--app-url", dev_server, "delete-preview", job_id)
    assert again.code == Exit.CONFLICT and "no active preview" in again.err
    unknown = run_cli(services, "--app-url", dev_server, "delete-preview", "fj_nope")
    assert unknown.code == Exit.NOT_FOUND


def test_commands_that_change_things_need_the_app(services) -> None:
    for argv in (["reap"], ["purge"], ["cancel", "fj_x"], ["delete-preview", "fj_x"], ["health"]):
        run = run_cli(services, *argv)
        assert run.code == Exit.AUTH, argv
        assert "FOUNDRY_ADMIN_APP_URL" in run.err and run.out == ""


def test_an_unreachable_app_exits_5(services) -> None:
    from tests.azurite import free_port

    run = run_cli(services, "--app-url", f"http://127.0.0.1:{free_port()}", "health")
    assert run.code == 5 and "cannot reach" in run.err
    assert "Traceback" not in run.err


@pytest.mark.parametrize("command", ["reap", "purge"])
def test_reap_and_purge_run_the_apps_timer(api, driver, services, dev_server, command) -> None:
    """The maintenance pass runs in the app (here the dev server), with the app's settings and
    backend: an expired preview is torn down by the app's backend, not the operator's."""
    job_id = ready_job(api, driver, services)
    backend = services.backend
    assert backend.resources[job_id]
    past = datetime.now(UTC) - timedelta(minutes=1)
    services.jobs.update(job_id, lambda r: replace(r, preview_expires_at=past))
    run = run_cli(services, "--app-url", dev_server, command, "--json")
    assert run.code == 0, run.err
    assert run.json() == {"function": "maintenance", "queued": True, "http_status": 202}
    wait_for(lambda: services.jobs.get_job(job_id).status is JobStatus.EXPIRED, "the reaper to run")
    wait_for(lambda: job_id not in backend.resources, "the preview's teardown")


def test_help_lists_the_environment_and_exit_codes(services, capsys) -> None:
    assert run_cli(services, "--help").code == 0
    text = capsys.readouterr().out  # argparse prints help itself
    for name in (
        "FOUNDRY_ADMIN_APP_URL",
        "FOUNDRY_ADMIN_API_KEY",
        "FOUNDRY_ADMIN_MASTER_KEY",
        "FOUNDRY_ADMIN_DURABLE_KEY",
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING",
    ):
        assert name in text
    for code in Exit:
        assert re.search(rf"^  {int(code)}  \S", text, re.MULTILINE), code
    usage = run_cli(services, "logs")  # missing JOB_ID
    assert usage.code == Exit.USAGE


def test_json_works_before_or_after_the_subcommand(api, driver, services) -> None:
    ready_job(api, driver, services)
    before = run_cli(services, "--json", "list").json()
    after = run_cli(services, "list", "--json").json()
    assert before == after and len(before["jobs"]) == 1


def test_reindex_adopts_rows_from_before_the_index(api: Api, services) -> None:
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    entity = services.jobs.jobs.get_entity("job", newest_first_key(accepted["job_id"]))
    entity.pop("ix")
    services.jobs.jobs.upsert_entity(entity, mode=UpdateMode.REPLACE)
    first = run_cli(services, "reindex")
    assert (first.code, first.out) == (0, "1 job rows indexed\n")
    assert run_cli(services, "--json", "reindex").json() == {"indexed": 0}


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_show_needs_the_durable_system_key(api, driver, services, dev_server, monkeypatch, key):
    """The management API refuses without the key (as on Azure): the job is still shown, its
    orchestration part says which setting is missing."""
    job_id = ready_job(api, driver, services)
    if key is None:
        monkeypatch.delenv("FOUNDRY_ADMIN_DURABLE_KEY")
    else:
        monkeypatch.setenv("FOUNDRY_ADMIN_DURABLE_KEY", key)
    run = run_cli(services, "--app-url", dev_server, "show", job_id, "--json")
    assert run.code == 0, run.err
    orchestration = run.json()["orchestration"]
    assert "runtime_status" not in orchestration
    assert "FOUNDRY_ADMIN_DURABLE_KEY" in orchestration["error"]
    assert SYSTEM_KEY not in run.out + run.err
