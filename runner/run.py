"""One job, start to end: inputs in, builder run and followed, outputs and the marker out.

Order of the end (it matters to readers): the logs are flushed first, then the source artifact
and the diagnostics archive are uploaded, then the result marker is written last, so a marker
means "everything this run will ever upload is there". A runner that finds a marker already
written exits at once with the recorded status; one that finds a non-empty stream but no marker
(an earlier runner died mid-build) does not run the builder a second time.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobClient

from runner import RUNNER_SCHEMA_VERSION
from runner.append_log import AppendLog
from runner.archives import pack_diagnostics, pack_source
from runner.config import RunnerConfig
from runner.contract import PREVIEW_CONTRACT_TASK
from runner.follower import LogFollower
from runner.outcome import (
    EXITED,
    INTERRUPTED,
    RUNNER_ERROR,
    START_FAILED,
    TERMINATED,
    TIMEOUT,
    Outcome,
    exit_code_of_marker,
)
from runner.proctree import BuilderProcess
from runner.scrub import Scrubber
from runner.storage import (
    BlobClientFactory,
    create_once,
    download,
    read_if_exists,
    sas_blob_client,
    upload_file,
)

log = logging.getLogger(__name__)
TICK_SECS = 0.05
REAP_EVERY_SECS = 1.0
#: How long the end of the run keeps retrying a log flush that storage refuses.
FINAL_FLUSH_SECS = 15.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Runner:
    def __init__(
        self,
        config: RunnerConfig,
        *,
        blob_factory: BlobClientFactory = sas_blob_client,
        reap_all_children: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.blob_factory = blob_factory
        self.reap_all_children = reap_all_children
        self.clock = clock
        self.scrubber = Scrubber(config.secrets)
        self.workspace = config.workspace
        self.work = self.workspace / "work"
        self.logs = self.workspace / "logs"
        self.output = self.workspace / "output"
        self.stop_requested = False
        self.hurry = False
        self.builder: BuilderProcess | None = None
        self.followers: dict[str, LogFollower] = {}
        self.uploads: dict[str, str] = {}
        self.source_skipped: list[str] = []
        self._clients: dict[str, BlobClient] = {}
        self._stderr_start = 0

    # -- signals -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: stop the builder gracefully. Any later call: stop waiting for it."""
        if self.stop_requested:
            self.hurry = True
        self.stop_requested = True

    # -- helpers -----------------------------------------------------------------------------
    def _client(self, name: str) -> BlobClient | None:
        url = self.config.grant.url(name)
        if url is None:
            return None
        if name not in self._clients:
            self._clients[name] = self.blob_factory(url)
        return self._clients[name]

    def say(self, message: str) -> None:
        """A line from the runner itself: into the stderr log (uploaded with the builder's) and
        to the container's console. Scrubbed like everything else."""
        line = self.scrubber.scrub_text(message)
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / "stderr.log").open("a", encoding="utf-8") as fh:
            fh.write(f"[runner] {line}\n")
        print(f"[runner] {line}", file=sys.stderr, flush=True)

    def _pump(self, *, final: bool = False) -> None:
        for follower in self.followers.values():
            follower.pump(final=final)

    def _final_flush(self) -> None:
        deadline = self.clock() + FINAL_FLUSH_SECS
        while True:
            self._pump(final=True)
            left = [f for f in self.followers.values() if f.pending_bytes > 0]
            if not left or self.clock() >= deadline:
                return
            time.sleep(min(0.5, max(0.0, min(f.retry_at for f in left) - self.clock())))

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        started_at, started = _now(), self.clock()
        for path in (self.work, self.logs, self.output):
            path.mkdir(parents=True, exist_ok=True)
        # A workspace reused by a restarted runner: its old console lines were uploaded already.
        self._stderr_start = (
            (self.logs / "stderr.log").stat().st_size if (self.logs / "stderr.log").exists() else 0
        )
        try:
            existing = self._existing_marker()
        except AzureError as exc:
            existing = None
            self.say(f"could not read an earlier result marker ({type(exc).__name__})")
        if existing is not None:
            self.say(f"job already finished ({existing.get('reason')}); nothing to do")
            return exit_code_of_marker(existing)
        builder_started: str | None = None
        try:
            outcome = self._prepare()
            if outcome is None:
                builder_started = _now()
                outcome = self._run_builder()
        except AzureError as exc:
            outcome = Outcome(START_FAILED, message=f"storage: {type(exc).__name__}")
        except Exception as exc:  # whatever broke, the job still gets its marker
            log.exception("runner failure")
            reason = START_FAILED if self.builder is None else RUNNER_ERROR
            outcome = Outcome(reason, message=f"runner failure: {type(exc).__name__}")
        finally:
            if self.builder is not None and self.builder.alive():
                self.builder.stop(self.config.term_grace_secs, hurry=lambda: self.hurry)
        self.say(self._describe(outcome, self.clock() - started))
        self._final_flush()
        if outcome.reason != INTERRUPTED:
            self._upload_source()
            self._upload_diagnostics(outcome, started_at, builder_started)
        self._final_flush()
        self._write_marker(outcome, started_at, builder_started, self.clock() - started)
        return outcome.process_exit_code()

    def _existing_marker(self) -> dict[str, Any] | None:
        client = self._client("result")
        raw = read_if_exists(client) if client is not None else None
        if raw is None:
            return None
        try:
            marker = json.loads(raw)
        except ValueError:
            return None
        return marker if isinstance(marker, dict) else None

    def _prepare(self) -> Outcome | None:
        """Open the logs and fetch the inputs; an outcome when the builder must not run."""
        stream_client = self._client("stream_log")
        assert stream_client is not None  # a required grant entry
        stream = AppendLog(stream_client, content_type="application/x-ndjson")
        stream.open()
        stderr_client = self._client("stderr_log")
        stderr: AppendLog | None = None
        if stderr_client is not None:
            stderr = AppendLog(stderr_client, content_type="text/plain; charset=utf-8")
            stderr.open()
        stream_path = (
            self.work / self.config.stream_file
            if self.config.stream_file
            else self.logs / "stream.jsonl"
        )
        interval, size = self.config.flush_interval_secs, self.config.flush_bytes
        self.followers = {
            "stream_log": LogFollower(
                stream_path, stream, self.scrubber,
                flush_interval=interval, flush_bytes=size, clock=self.clock,
            ),
            "stderr_log": LogFollower(
                self.logs / "stderr.log", stderr, self.scrubber,
                flush_interval=interval, flush_bytes=size, clock=self.clock,
            ),
        }  # fmt: skip
        self.followers["stderr_log"].position = self._stderr_start
        if stream.length > 0:
            return Outcome(
                INTERRUPTED,
                message="the stream already has output from an earlier runner; not rebuilding",
            )
        if self.stop_requested:
            return Outcome(TERMINATED, message="stopped before the builder started")
        spec = self._client("spec_md")
        tasks = self._client("tasks_md")
        assert spec is not None
        assert tasks is not None
        (self.work / "SPEC.md").write_bytes(download(spec))
        (self.work / "TASKS.md").write_bytes(download(tasks) + PREVIEW_CONTRACT_TASK.encode())
        return None

    def _run_builder(self) -> Outcome:
        stream_path = self.followers["stream_log"].path
        stream_path.parent.mkdir(parents=True, exist_ok=True)
        stderr_fd = os.open(self.logs / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        # The stream starts empty: the blob has nothing of an earlier attempt (else we would
        # not be here), so neither may the file that feeds it.
        stdout_fd = (
            os.dup(stderr_fd)
            if self.config.stream_file
            else os.open(stream_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
        )
        if self.config.stream_file:
            stream_path.unlink(missing_ok=True)
        try:
            self.say(f"starting the builder for job {self.config.job_id}")
            self.builder = BuilderProcess(
                self.config.builder_command,
                cwd=self.work,
                env=self.config.builder_env,
                stdout=stdout_fd,
                stderr=stderr_fd,
                reap_all_children=self.reap_all_children,
            )
        except OSError as exc:
            return Outcome(START_FAILED, message=f"cannot start the builder: {exc.strerror}")
        finally:
            os.close(stdout_fd)
            os.close(stderr_fd)
        builder = self.builder
        deadline = self.clock() + self.config.timeout_secs if self.config.timeout_secs else None
        reason, next_reap = EXITED, 0.0
        while builder.poll() is None:
            if self.stop_requested:
                reason = TERMINATED
                break
            if deadline is not None and self.clock() >= deadline:
                reason = TIMEOUT
                break
            self._pump()
            if self.clock() >= next_reap:
                builder.reap()
                next_reap = self.clock() + REAP_EVERY_SECS
            time.sleep(TICK_SECS)
        if reason != EXITED:
            self.say(f"stopping the builder ({reason})")
        # Also after a normal exit: whatever the builder left running is part of the build.
        builder.stop(self.config.term_grace_secs, tick=self._pump, hurry=lambda: self.hurry)
        return Outcome.from_returncode(reason, builder.returncode)

    @staticmethod
    def _describe(outcome: Outcome, secs: float) -> str:
        how = (
            f"exit code {outcome.exit_code}"
            if outcome.exit_code is not None
            else (outcome.signal or "no exit status")
        )
        text = f"build ended: {outcome.reason}, {how}, after {secs:.1f}s"
        return f"{text} ({outcome.message})" if outcome.message else text

    # -- outputs -----------------------------------------------------------------------------
    def _upload(self, name: str, path: Path, content_type: str) -> None:
        client = self._client(name)
        if client is None:
            self.uploads[name] = "not_granted"
            return
        try:
            upload_file(client, path, content_type=content_type)
        except (AzureError, OSError) as exc:
            self.uploads[name] = "failed"
            self.say(f"uploading {name} failed ({type(exc).__name__})")
            return
        self.uploads[name] = "uploaded"

    def _upload_source(self) -> None:
        if not any(self.work.iterdir()):
            self.uploads["source_artifact"] = "empty"
            return
        target = self.output / "source.tar.gz"
        try:
            self.source_skipped = pack_source(self.work, target, self.scrubber)
        except OSError as exc:
            self.uploads["source_artifact"] = "failed"
            self.say(f"packing the source failed ({exc.strerror})")
            return
        if self.source_skipped:
            self.say("left out of the source for their size: " + ", ".join(self.source_skipped))
        self._upload("source_artifact", target, "application/gzip")

    def _upload_diagnostics(
        self, outcome: Outcome, started_at: str, builder_started: str | None
    ) -> None:
        target = self.output / "diagnostics.tar.gz"
        metadata = {
            "schema_version": RUNNER_SCHEMA_VERSION,
            "job_id": self.config.job_id,
            "builder_command": self.config.builder_command,
            "started_at": started_at,
            "builder_started_at": builder_started,
            "outcome": outcome.fields(),
            "uploads": dict(self.uploads),
        }
        try:
            pack_diagnostics(
                target, logs=self.logs, work=self.work, metadata=metadata, scrubber=self.scrubber
            )
        except OSError as exc:
            self.uploads["diagnostics"] = "failed"
            self.say(f"packing diagnostics failed ({exc.strerror})")
            return
        self._upload("diagnostics", target, "application/gzip")

    def _write_marker(
        self, outcome: Outcome, started_at: str, builder_started: str | None, secs: float
    ) -> None:
        marker: dict[str, Any] = {
            "schema_version": RUNNER_SCHEMA_VERSION,
            "job_id": self.config.job_id,
            **outcome.fields(),
            "started_at": started_at,
            "builder_started_at": builder_started,
            "finished_at": _now(),
            "duration_secs": round(secs, 3),
            "logs": {
                name: {
                    "uploaded_bytes": f.uploaded_bytes,
                    "dropped_bytes": f.dropped_bytes,
                    "reconciled_appends": f.blob.reconciled if f.blob else 0,
                    "last_error": f.last_error,
                }
                for name, f in self.followers.items()
            },
            "uploads": dict(self.uploads),
            "source_skipped": self.source_skipped,
        }
        data = self.scrubber.scrub(json.dumps(marker, sort_keys=True).encode())
        (self.output / "result.json").write_bytes(data)
        client = self._client("result")
        if client is None:
            return
        try:
            if not create_once(client, data, content_type="application/json"):
                log.warning("a result marker already existed; kept the first one")
        except AzureError as exc:
            print(
                f"[runner] writing the result marker failed ({type(exc).__name__})", file=sys.stderr
            )
