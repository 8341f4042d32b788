"""The runner end to end, as the build container runs it (``python -m runner``), against Azurite
with a grant signed by the service's own code and a real builder child process."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ServiceRequestError

from runner import run as run_module
from runner.append_log import MAX_BLOCK_BYTES
from runner.config import RunnerConfig
from runner.run import MARKER_METADATA_CHARS, Runner
from shared.backends.build_context import prepare_build_context
from shared.domain.models import JobRecord
from shared.domain.stream_progress import apply_stream_lines
from shared.storage.job_blobs import (
    ARTIFACT_PATH,
    DIAGNOSTICS_PATH,
    STDERR_PATH,
    STREAM_PATH,
    builder_grant,
)
from tests.runner.harness import (
    AppendRecorder,
    Job,
    NoticeServer,
    example_builder,
    fake_builder,
    make_job,
    run_in_process,
    tar_members,
)


def test_a_build_streams_its_events_and_uploads_everything(job: Job) -> None:
    code, console = job.run(example_builder())
    assert code == 0, console
    # The stream blob holds exactly what the builder printed, in order, once.
    local = (job.workspace / "logs" / "stream.jsonl").read_bytes()
    stream = job.stream()
    assert stream == local
    events = [json.loads(line) for line in stream.splitlines()]
    assert events[0]["event"] == "stage_started"
    assert events[-1]["schema_version"] == 3
    # ...and the service folds it into progress as it would on Azure.
    record = JobRecord(
        job_id=job.job_id, app_name="a", owner="o", request_hash="h",
        created_at=datetime.now(UTC), ttl_hours=1,
    )  # fmt: skip
    folded = apply_stream_lines(record, stream)
    assert folded.detail["report_received"] is True
    assert folded.detail["tasks_total"] == 3  # T1, T2 and the preview contract task
    # A quiet builder leaves no stderr blob: the runner's routine lines go to its console and
    # the diagnostics' metadata, not into a blob write of their own.
    assert not job.blobs.exists(job.job_id, STDERR_PATH)
    # The source: the work tree the builder left, inputs included, buildable as an image.
    source = tar_members(job.blob(ARTIFACT_PATH))
    assert {"SPEC.md", "TASKS.md", "app/index.html", "app/Dockerfile"} <= set(source)
    assert b"TPREVIEW.1" in source["TASKS.md"]
    _, kind = prepare_build_context(job.blob(ARTIFACT_PATH))
    assert kind == "project"
    diagnostics = tar_members(job.blob(DIAGNOSTICS_PATH))
    assert {"logs/stream.jsonl", "logs/stderr.log", "metadata.json"} <= set(diagnostics)
    metadata = json.loads(diagnostics["metadata.json"])
    assert metadata["job_id"] == job.job_id
    assert any(note.startswith("builder started") for note in metadata["runner_notes"])
    marker = job.marker()
    assert marker["reason"] == "exited"
    assert marker["exit_code"] == 0
    assert marker["job_id"] == job.job_id
    assert (
        marker["started_at"]
        <= marker["builder_started_at"]
        <= marker["builder_finished_at"]
        <= marker["finished_at"]
    )
    assert marker["uploads"] == {"source_artifact": "uploaded", "diagnostics": "uploaded"}
    assert marker["logs"]["stream_log"]["uploaded_bytes"] == len(stream)
    # Counted at the transport, before the diagnostics upload that carries the marker: the
    # marker looked for and the stream's length (HEAD), the inputs read once (GET), the stream
    # created and appended to, the source uploaded (PUT); nothing else.
    requests = marker["storage_requests"]
    appends = requests["PUT"] - 2  # all but the stream's creation and the source upload...
    assert requests == {"HEAD": 2, "GET": 1, "PUT": 2 + appends}, requests
    props = job.blobs.container.get_blob_client(f"jobs/{job.job_id}/{STREAM_PATH}")
    assert appends == props.get_blob_properties().append_blob_committed_block_count  # ...appends


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; it only waits to be collected)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_a_lost_append_reply_never_duplicates_a_line(job_blobs, tmp_path: Path) -> None:
    tasks = "".join(f"- [ ] T{n}: task {n}\n" for n in range(1, 9))
    job = make_job(job_blobs, tmp_path / "ws", spec_md="# x\n", tasks_md=tasks)
    transport = AppendRecorder(lose_replies=frozenset({1, 3, 5}))
    code, _ = run_in_process(
        job, example_builder(), transport,
        FOUNDRY_RUNNER_FLUSH_MS="20", FOUNDRY_EXAMPLE_BUILDER_DELAY="0.25",
    )  # fmt: skip
    assert code == 0
    assert len(transport.append_sizes) >= 6  # each loss was retried, and more followed
    logs = job.workspace / "logs"
    assert job.stream() == (logs / "stream.jsonl").read_bytes()
    lines = job.stream().splitlines()
    assert len(lines) == len(set(lines))  # every event of the example builder is unique
    reconciled = sum(log["reconciled_appends"] for log in job.marker()["logs"].values())
    assert reconciled == 3


def test_appends_stay_within_four_mib(job: Job) -> None:
    transport = AppendRecorder()
    code, _ = run_in_process(job, fake_builder("burst"), transport)
    assert code == 0
    local = (job.workspace / "logs" / "stream.jsonl").read_bytes()
    assert len(local) == 8 * 1024 * 1000 + 5 * 1024 * 1024
    # The unterminated last line is closed so that readers taking whole lines see it.
    assert job.stream() == local + b"\n"
    assert max(transport.append_sizes) <= MAX_BLOCK_BYTES
    props = job.blobs.container.get_blob_client(f"jobs/{job.job_id}/{STREAM_PATH}")
    assert (props.get_blob_properties().append_blob_committed_block_count or 0) >= 4


def test_a_failing_builder_is_recorded_as_such(job_blobs, tmp_path: Path) -> None:
    job = make_job(
        job_blobs,
        tmp_path / "ws",
        spec_md="# x\n<!-- foundry:crash -->\n",
        tasks_md="- [ ] T1: a\n",
    )
    code, console = job.run(example_builder())
    assert code == 3, console
    marker = job.marker()
    assert (marker["reason"], marker["exit_code"], marker["signal"]) == ("exited", 3, None)
    assert b"crash requested" in job.stderr()
    assert marker["uploads"]["diagnostics"] == "uploaded"


def test_sigterm_stops_the_whole_tree_and_still_reports(job: Job) -> None:
    runner = job.start(fake_builder("tree"))
    pids_file = job.workspace / "work" / "pids.txt"
    wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 3)
    wait_for(lambda: b"tick" in job.stream())  # live: lines arrive while the builder runs
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(running(pid) for pid in pids)
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 143, out.decode()
    # The builder, its TERM-ignoring child (killed after the grace) and its detached daemon.
    assert [pid for pid in pids if running(pid)] == []
    marker = job.marker()
    assert marker["reason"] == "terminated"
    assert marker["exit_code"] == 0  # the builder's own SIGTERM handler exited cleanly
    assert b"builder got SIGTERM" in job.stream()
    assert marker["uploads"]["source_artifact"] == "uploaded"


def test_a_killed_runner_takes_its_builder_along(job: Job) -> None:
    runner = job.start(fake_builder("sleep"))
    pid_file = job.workspace / "work" / "builder.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != "")
    builder = int(pid_file.read_text())
    runner.kill()
    runner.communicate(timeout=10)
    wait_for(lambda: not running(builder), timeout=5)


def test_the_runner_timeout_stops_the_builder(job: Job) -> None:
    code, console = job.run(fake_builder("sleep"), FOUNDRY_RUNNER_TIMEOUT_SECS="1")
    assert code == 124, console
    marker = job.marker()
    assert marker["reason"] == "timeout"
    assert marker["signal"] == "SIGTERM"
    assert b"stage_started" in job.stream()


def test_a_builder_that_cannot_start_is_reported(job: Job) -> None:
    code, console = job.run(["/nonexistent/builder"])
    assert code == 127, console
    assert job.marker()["reason"] == "start_failed"


def test_nothing_uploaded_contains_the_token_or_a_signature(job: Job) -> None:
    grant = json.loads(job.grant)
    signed_url = grant["inputs"]
    signature = parse_qs(urlsplit(signed_url).query)["sig"][0]
    raw_signatures = {
        part.split("=", 1)[1] for url in grant.values() for part in urlsplit(url).query.split("&")
        if part.startswith("sig=")
    }  # fmt: skip
    code, console = job.run(fake_builder("leak"), LEAK_URL=signed_url)
    assert code == 0, console
    secrets = {job.token, signature, *raw_signatures, "ABCDEFGHIJKLMNOPQRSTUVWX"}
    everything = job.every_blob()
    assert any(name.endswith("config.env") for name in everything)  # the leaky file was packed
    for name, data in everything.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{name} leaks a secret"
    assert b"[redacted]" in job.stream() and b"[redacted]" in job.stderr()
    assert b"grant visible: False" in job.stream()
    assert secrets.isdisjoint(console.split())  # the runner's own console too


def test_a_restarted_runner_does_not_build_twice(job: Job, tmp_path: Path) -> None:
    assert job.run(example_builder())[0] == 0
    stream, marker = job.stream(), job.marker()
    job.workspace = tmp_path / "second-container"
    code, console = job.run(example_builder())
    assert code == 0, console
    assert "already finished" in console
    assert not (job.workspace / "work" / "SPEC.md").exists()
    assert (job.stream(), job.marker()) == (stream, marker)


def test_a_runner_that_finds_an_earlier_stream_does_not_rebuild(job: Job) -> None:
    job.blobs.ensure_log(job.job_id)  # an earlier runner created the stream and wrote a line
    job.blobs.append_log(job.job_id, b'{"event":"stage_started"}\n', at_offset=0)
    # ...in this very workspace (the local backend reuses it): its file is not uploaded again.
    (job.workspace / "logs").mkdir(parents=True)
    (job.workspace / "logs" / "stream.jsonl").write_bytes(b'{"event":"stage_started"}\n')
    code, console = job.run(example_builder())
    assert code == 1, console
    assert job.marker()["reason"] == "interrupted"
    assert job.stream() == b'{"event":"stage_started"}\n'
    assert not job.blobs.exists(job.job_id, ARTIFACT_PATH)
    # The marker's archive says why (the stderr log too: it is a warning).
    metadata = json.loads(tar_members(job.blob(DIAGNOSTICS_PATH))["metadata.json"])
    assert metadata["outcome"]["reason"] == "interrupted"
    assert b"not rebuilding" in job.stderr()


def test_an_expired_grant_fails_before_the_builder_runs(job: Job) -> None:
    job.grant = builder_grant(job.blobs, job.job_id, ttl_secs=1)
    time.sleep(2)
    code, console = job.run(fake_builder("sleep"))
    assert code == 127, console
    assert "blob storage: HTTP 403" in console
    assert "sig=" not in console and "://" not in console
    assert not (job.workspace / "work" / "builder.pid").exists()


def test_a_builder_may_write_its_stream_to_a_file(job: Job) -> None:
    script = 'echo "human text"; echo \'{"event":"from_file"}\' >> out/stream.jsonl'
    code, console = job.run(["sh", "-c", script], FOUNDRY_BUILDER_STREAM_FILE="out/stream.jsonl")
    assert code == 0, console
    assert job.stream() == b'{"event":"from_file"}\n'
    assert b"human text" in job.stderr()


@pytest.mark.parametrize("answer", [202, 401])
def test_the_service_hears_of_progress_and_of_the_end(job: Job, answer: int) -> None:
    server = NoticeServer(job, status=answer)
    try:
        code, console = job.run(
            example_builder(), FOUNDRY_BUILD_EVENTS_URL=server.url,
            # Seconds per task: long enough that a progress notice is due well before the end
            # even on a loaded machine (a pending one is dropped once ``finished`` goes).
            FOUNDRY_EXAMPLE_BUILDER_DELAY="1.5",
        )  # fmt: skip
    finally:
        server.close()
    assert code == 0, console  # notices are hints: a refused one fails nothing
    assert all(n["authorization"] == f"Bearer {job.token}" for n in server.notices)
    assert all(n["path"] == f"/v1/jobs/{job.job_id}/build-events" for n in server.notices)
    if answer == 401:
        assert len(server.notices) == 1  # refused for good: the runner stops asking
        return
    events = server.events()
    assert events[-1] == "finished" and events.count("finished") == 1
    assert "progress" in events
    assert server.notices[-1]["marker_written"] is True  # everything was uploaded before


def test_the_marker_fits_blob_metadata_whatever_it_holds(job: Job) -> None:
    runner = Runner(RunnerConfig.from_env(job.env(example_builder())))
    marker = {
        "reason": "start_failed",
        "message": "é" * 5000,  # six ASCII characters each once JSON-escaped
        "source_skipped": [f"dir/{'ü' * 200}/{n}.bin" for n in range(200)],
    }
    value = runner._marker_metadata(marker)
    assert len(value) <= MARKER_METADATA_CHARS and value.isascii()
    fitted = json.loads(value)
    assert fitted["reason"] == "start_failed"
    assert fitted["source_skipped_count"] == 200
    assert fitted["message"].startswith("é")
    # A marker that fits is kept whole.
    small = {"reason": "exited", "message": None, "source_skipped": ["a.bin"]}
    assert json.loads(runner._marker_metadata(small)) == small


def test_the_marker_goes_up_even_when_diagnostics_cannot_be_packed(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pack = run_module.pack_diagnostics

    def pack_failing_on_logs(target, *, logs, work, metadata, scrubber):
        if logs is not None:
            raise OSError(28, "No space left on device")
        real_pack(target, logs=logs, work=work, metadata=metadata, scrubber=scrubber)

    monkeypatch.setattr(run_module, "pack_diagnostics", pack_failing_on_logs)
    code, _ = run_in_process(job, example_builder(), AppendRecorder())
    assert code == 0
    marker = job.marker()
    assert (marker["reason"], marker["exit_code"]) == ("exited", 0)
    archive = tar_members(job.blob(DIAGNOSTICS_PATH))
    assert set(archive) == {"metadata.json"}
    notes = json.loads(archive["metadata.json"])["runner_notes"]
    assert any("packing diagnostics failed" in note for note in notes)


class FailingDiagnostics(AppendRecorder):
    """Refuses the first ``failures`` uploads of the diagnostics archive (as a network fault
    that outlasts the SDK's retries would)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def send(self, request, **kwargs):
        if request.method == "PUT" and "diagnostics.tar.gz" in request.url and self.failures:
            self.failures -= 1
            raise ServiceRequestError("injected: diagnostics upload failed")
        return super().send(request, **kwargs)


def test_a_failed_diagnostics_upload_still_leaves_the_marker(job: Job) -> None:
    transport = FailingDiagnostics(failures=4)  # the first upload and its 3 SDK retries
    code, _ = run_in_process(job, example_builder(), transport)
    assert code == 0
    assert transport.failures == 0
    marker = job.marker()  # in storage: the job's record survives
    assert (marker["reason"], marker["exit_code"]) == ("exited", 0)
    assert set(tar_members(job.blob(DIAGNOSTICS_PATH))) == {"metadata.json"}
    local = json.loads((job.workspace / "output" / "result.json").read_text())
    assert local["uploads"]["diagnostics"] == "marker_only"


def test_a_secret_shaped_name_cannot_break_the_marker(job: Job) -> None:
    runner = Runner(RunnerConfig.from_env(job.env(example_builder())))
    leaky = 'big/sig=ABCDEFGHIJKLMNOPQRSTUVWX"x.bin'
    fitted = json.loads(runner._marker_metadata({"reason": "exited", "source_skipped": [leaky]}))
    assert fitted["source_skipped"] == ['big/sig=[redacted]"x.bin']  # valid JSON, no signature
    assert "ABCDEFGHIJKLMNOP" not in json.dumps(fitted)


@pytest.mark.parametrize("grant_names", ["new service", "old service"])
def test_a_job_submitted_before_the_inputs_blob_still_builds(
    job_blobs, tmp_path: Path, grant_names: str
) -> None:
    """Inputs in the two files of the earlier layout: granted by this service (a job queued
    across the upgrade) or by the service before it (only the two files in the grant)."""
    job = make_job(job_blobs, tmp_path / "ws", spec_md="# unused\n", tasks_md="- [ ] T1: a\n")
    job_blobs.delete_inputs(job.job_id)
    for name, text in (("SPEC.md", "# Legacy shop\n"), ("TASKS.md", "- [ ] T1: a page\n")):
        job_blobs.container.upload_blob(f"jobs/{job.job_id}/input/{name}", text.encode())
    if grant_names == "old service":
        grant = json.loads(job.grant)
        del grant["inputs"]
        job.grant = json.dumps(grant)
    code, console = job.run(example_builder())
    assert code == 0, console
    assert (job.workspace / "work" / "SPEC.md").read_text() == "# Legacy shop\n"
    assert job.marker()["reason"] == "exited"
