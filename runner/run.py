"""One job, start to end: inputs in, builder run and followed, outputs and the marker out.

Start: the earlier result marker, the stream's length and the inputs are read with plain HTTP
(runner/sas_http.py), the builder starts, and only then is the Azure SDK loaded (about a second)
while the builder already works; its output waits in local files meanwhile.

End (the order matters to readers): the logs are flushed first, then the source artifact is
uploaded, then the diagnostics archive, whose upload carries the result marker as its metadata
(one blob write for both), so a marker means "everything this run will ever upload is there". A
runner that finds a marker already written exits at once with the recorded status; one that
finds a non-empty stream but no marker (an earlier runner died mid-build) does not run the
builder a second time.

Storage writes cost about 140 table transactions each (docs/cost-model.md), so the runner makes
none it does not need: the stderr log exists only once the builder (or a runner warning) writes
to it; the runner's routine lines go to the container's console and the diagnostics' metadata.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runner import RESULT_METADATA_KEY, RUNNER_SCHEMA_VERSION, sas_http
from runner.archives import pack_diagnostics, pack_source
from runner.config import RunnerConfig
from runner.contract import PREVIEW_CONTRACT_TASK
from runner.grant import INPUTS, LEGACY_INPUTS
from runner.notices import Notifier
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
from runner.request_count import RequestCount
from runner.scrub import Scrubber

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

    from runner.follower import LogFollower
    from runner.storage import BlobClientFactory

log = logging.getLogger(__name__)
TICK_SECS = 0.05
REAP_EVERY_SECS = 5.0
#: How long the end of the run keeps retrying log flushes that fail (all of them together).
FINAL_FLUSH_SECS = 15.0
#: The marker travels as blob metadata (8 KiB for all of a blob's metadata): longer texts and
#: lists are cut there; diagnostics' ``metadata.json`` keeps them whole.
MARKER_METADATA_CHARS = 7 * 1024
MARKER_MESSAGE_CHARS = 1000
MARKER_LISTED_FILES = 20


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Runner:
    def __init__(
        self,
        config: RunnerConfig,
        *,
        blob_factory: BlobClientFactory | None = None,
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
        self.stream_path = (
            self.work / config.stream_file if config.stream_file else self.logs / "stream.jsonl"
        )
        self.stop_requested = False
        self.hurry = False
        self.builder: BuilderProcess | None = None
        self.followers: dict[str, LogFollower] = {}
        self.uploads: dict[str, str] = {}
        self.source_skipped: list[str] = []
        #: The runner's own lines of this run (also on its console), for diagnostics.
        self.notes: list[str] = []
        self._clients: dict[str, BlobClient] = {}
        self.storage_requests = RequestCount()
        self._stderr_start = 0
        self.builder_finished_at: str | None = None
        self._flush_deadline: float | None = None
        self.notifier = Notifier(config.events_url, config.token)

    # -- signals -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: stop the builder gracefully. Any later call: stop waiting for it."""
        if self.stop_requested:
            self.hurry = True
        self.stop_requested = True

    # -- helpers -----------------------------------------------------------------------------
    def _client(self, name: str) -> BlobClient | None:
        """The SDK client for one grant entry (loads the SDK on first use)."""
        url = self.config.grant.url(name)
        if url is None:
            return None
        if name not in self._clients:
            if self.blob_factory is None:
                from runner.storage import sas_blob_client

                self.blob_factory = functools.partial(
                    sas_blob_client, raw_response_hook=self.storage_requests.hook
                )
            self._clients[name] = self.blob_factory(url)
        return self._clients[name]

    def say(self, message: str) -> None:
        """A routine line from the runner itself: to the container's console and into the
        diagnostics' metadata. Scrubbed like everything else."""
        line = self.scrubber.scrub_text(message)
        self.notes.append(line)
        print(f"[runner] {line}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        """A line about something that went wrong: as :meth:`say`, and also into the stderr log
        (uploaded with the builder's stderr), where whoever reads the job's logs finds it."""
        self.say(message)
        line = self.notes[-1]
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / "stderr.log").open("a", encoding="utf-8") as fh:
            fh.write(f"[runner] {line}\n")

    def _pump(self, *, final: bool = False) -> None:
        stream = self.followers.get("stream_log")
        before = stream.uploaded_bytes if stream is not None else 0
        for follower in self.followers.values():
            follower.pump(final=final)
        if stream is not None and stream.uploaded_bytes > before and not final:
            self.notifier.progress()

    def _final_flush(self) -> None:
        """Flush everything, retrying refusals until the end phase's shared deadline."""
        if self._flush_deadline is None:
            self._flush_deadline = self.clock() + FINAL_FLUSH_SECS
        deadline = self._flush_deadline
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
        stderr_file = self.logs / "stderr.log"
        # A workspace reused by a restarted runner: its old console lines were uploaded already.
        self._stderr_start = stderr_file.stat().st_size if stderr_file.exists() else 0
        try:
            existing = self._existing_marker()
        except sas_http.SasHttpError as exc:
            existing = None
            self.warn(f"could not read an earlier result marker ({exc})")
        if existing is not None:
            self.say(f"job already finished ({existing.get('reason')}); nothing to do")
            return exit_code_of_marker(existing)
        builder_started: str | None = None
        try:
            outcome = self._preflight()
            if outcome is None:
                builder_started = _now()
                outcome = self._start_builder()
                if outcome is not None:
                    builder_started = None
            self._open_logs()
            if outcome is not None and outcome.reason == INTERRUPTED:
                # A reused workspace holds the earlier runner's stream, already in the blob.
                stream = self.followers["stream_log"]
                stream.position += stream.pending_bytes
            if outcome is None:
                outcome = self._follow_builder()
        except sas_http.SasHttpError as exc:
            outcome = Outcome(START_FAILED, message=str(exc))
        except Exception as exc:  # whatever broke, the job still gets its marker
            log.exception("runner failure")
            reason = START_FAILED if self.builder is None else RUNNER_ERROR
            outcome = Outcome(reason, message=f"runner failure: {type(exc).__name__}")
        finally:
            if self.builder is not None and self.builder.alive():
                self.builder.stop(self.config.term_grace_secs, hurry=lambda: self.hurry)
        if not self.followers:
            self._open_logs()
        description = self._describe(outcome, self.clock() - started)
        (self.say if outcome.succeeded else self.warn)(description)
        self._final_flush()
        if outcome.reason != INTERRUPTED:
            self._upload_source()
            self._final_flush()  # a warning about the source is in the log before the marker
        self._finish(outcome, started_at, builder_started, self.clock() - started)
        if self.notifier.finished():
            print("[runner] the service was told the build finished", file=sys.stderr)
        return outcome.process_exit_code()

    def _existing_marker(self) -> dict[str, Any] | None:
        url = self.config.grant.url("diagnostics")
        if url is None:
            return None
        metadata = sas_http.metadata(url, count=self.storage_requests.add)
        raw = (metadata or {}).get(RESULT_METADATA_KEY)
        if raw is None:
            return None
        try:
            marker = json.loads(raw)
        except ValueError:
            return None
        return marker if isinstance(marker, dict) else None

    def _preflight(self) -> Outcome | None:
        """Before the builder may start: no earlier build's output, no stop yet, the inputs."""
        stream_url = self.config.grant.url("stream_log")
        assert stream_url is not None  # a required grant entry (runner/grant.py)
        if sas_http.size(stream_url, count=self.storage_requests.add):
            return Outcome(
                INTERRUPTED,
                message="the stream already has output from an earlier runner; not rebuilding",
            )
        if self.stop_requested:
            return Outcome(TERMINATED, message="stopped before the builder started")
        inputs = self._fetch_inputs()
        if inputs is None:
            return Outcome(START_FAILED, message="the job's inputs (SPEC.md, TASKS.md) are missing")
        spec, tasks = inputs
        (self.work / "SPEC.md").write_text(spec, encoding="utf-8")
        (self.work / "TASKS.md").write_text(tasks + PREVIEW_CONTRACT_TASK, encoding="utf-8")
        return None

    def _fetch_inputs(self) -> tuple[str, str] | None:
        """``(spec_md, tasks_md)``: from the one inputs blob, else (a job submitted before it, or
        a grant from a service before it) from the two files."""
        count, grant = self.storage_requests.add, self.config.grant
        inputs_url = grant.url(INPUTS)
        if inputs_url is not None:
            raw = sas_http.get(inputs_url, count=count)
            if raw is not None:
                return _parse_inputs(raw)
        legacy = [grant.url(name) for name in LEGACY_INPUTS]
        if any(url is None for url in legacy):
            return None
        spec, tasks = (sas_http.get(url, count=count) for url in legacy if url is not None)
        if spec is None or tasks is None:
            return None
        return spec.decode("utf-8", errors="replace"), tasks.decode("utf-8", errors="replace")

    def _start_builder(self) -> Outcome | None:
        self.stream_path.parent.mkdir(parents=True, exist_ok=True)
        stderr_fd = os.open(self.logs / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        # The stream starts empty: the blob has nothing of an earlier attempt (else we would
        # not be here), so neither may the file that feeds it.
        if self.config.stream_file:
            self.stream_path.unlink(missing_ok=True)
            stdout_fd = os.dup(stderr_fd)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC
            stdout_fd = os.open(self.stream_path, flags)
        try:
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
        self.say(f"builder started for job {self.config.job_id} (pid {self.builder.pid})")
        return None

    def _open_logs(self) -> None:
        """The followers of the two logs (loads the SDK; storage is first contacted by their
        first flush, so a slow or failing store never holds the builder up)."""
        from runner.append_log import AppendLog
        from runner.follower import LogFollower

        def follower(path: Path, name: str, content_type: str) -> LogFollower:
            client = self._client(name)
            blob = AppendLog(client, content_type=content_type) if client is not None else None
            return LogFollower(
                path,
                blob,
                self.scrubber,
                flush_interval=self.config.flush_interval_secs,
                flush_bytes=self.config.flush_bytes,
                clock=self.clock,
            )

        self.followers = {
            "stream_log": follower(self.stream_path, "stream_log", "application/x-ndjson"),
            "stderr_log": follower(
                self.logs / "stderr.log", "stderr_log", "text/plain; charset=utf-8"
            ),
        }
        self.followers["stderr_log"].position = self._stderr_start

    def _follow_builder(self) -> Outcome:
        builder = self.builder
        assert builder is not None
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
            self.warn(f"stopping the builder ({reason})")
        # Also after a normal exit: whatever the builder left running is part of the build.
        builder.stop(self.config.term_grace_secs, tick=self._pump, hurry=lambda: self.hurry)
        self.builder_finished_at = _now()
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
        from runner.storage import upload_file

        try:
            upload_file(client, path, content_type=content_type)
        except Exception as exc:  # noqa: BLE001 - a failed upload must not cost the marker
            self.uploads[name] = "failed"
            self.warn(f"uploading {name} failed ({type(exc).__name__})")
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
            self.warn(f"packing the source failed ({exc.strerror})")
            return
        if self.source_skipped:
            self.warn("left out of the source for their size: " + ", ".join(self.source_skipped))
        self._upload("source_artifact", target, "application/gzip")

    def _finish(
        self, outcome: Outcome, started_at: str, builder_started: str | None, secs: float
    ) -> None:
        """The result marker, in ``output/result.json`` locally and as the metadata of the
        diagnostics archive, uploaded create-once in one write: the first runner's is kept."""
        marker: dict[str, Any] = {
            "schema_version": RUNNER_SCHEMA_VERSION,
            "job_id": self.config.job_id,
            **outcome.fields(),
            "started_at": started_at,
            "builder_started_at": builder_started,
            "builder_finished_at": self.builder_finished_at,
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
            # Every storage request so far; the upload that carries this marker is one more PUT.
            "storage_requests": self.storage_requests.snapshot(),
        }
        packed = self.output / "diagnostics.tar.gz"
        archive: Path | bytes = packed
        try:
            self._pack_diagnostics(packed, marker, started_at, builder_started)
        except OSError as exc:
            # The marker must still go up: with a diagnostics archive of its metadata alone.
            self.say(f"packing diagnostics failed ({exc.strerror}); uploading the marker alone")
            archive = self._marker_only_archive(marker, started_at, builder_started)
        uploaded = self._upload_marked(archive, marker)
        if uploaded == "failed" and isinstance(archive, Path):
            # The marker is the job's record: try once more with the smallest archive.
            smallest = self._marker_only_archive(marker, started_at, builder_started)
            uploaded = self._upload_marked(smallest, marker)
            uploaded = "marker_only" if uploaded == "uploaded" else uploaded
        self.uploads["diagnostics"] = uploaded
        marker["uploads"] = dict(self.uploads)
        local = json.dumps(self.scrubber.scrub_values(marker), sort_keys=True)
        (self.output / "result.json").write_text(local, encoding="utf-8")

    def _upload_marked(self, archive: Path | bytes, marker: dict[str, Any]) -> str:
        """Upload the diagnostics archive create-once with the marker as its metadata; the
        upload status (``uploaded`` in the metadata itself: it is on the uploaded blob)."""
        client = self._client("diagnostics")
        if client is None:
            return "not_granted"
        from runner.storage import create_once

        stored = dict(marker, uploads=dict(marker["uploads"], diagnostics="uploaded"))
        try:
            with contextlib.ExitStack() as stack:
                data = (
                    archive
                    if isinstance(archive, bytes)
                    else stack.enter_context(archive.open("rb"))
                )
                created = create_once(
                    client,
                    data,
                    content_type="application/gzip",
                    metadata={RESULT_METADATA_KEY: self._marker_metadata(stored)},
                )
            if not created:
                log.warning("a result marker already existed; kept the first one")
                return "exists"
        except Exception as exc:  # noqa: BLE001 - nothing is left to do but say so
            print(
                "[runner] uploading diagnostics and the result marker failed "
                f"({type(exc).__name__})",
                file=sys.stderr,
            )
            return "failed"
        return "uploaded"

    def _marker_only_archive(
        self, marker: dict[str, Any], started_at: str, builder_started: str | None
    ) -> bytes:
        """A diagnostics archive of ``metadata.json`` alone, packed in memory."""
        buffer = io.BytesIO()
        self._pack_diagnostics(buffer, marker, started_at, builder_started, logs=False)
        return buffer.getvalue()

    def _pack_diagnostics(
        self,
        target: Path | IO[bytes],
        marker: dict[str, Any],
        started_at: str,
        builder_started: str | None,
        *,
        logs: bool = True,
    ) -> None:
        metadata = {
            "schema_version": RUNNER_SCHEMA_VERSION,
            "job_id": self.config.job_id,
            "builder_command": self.config.builder_command,
            "started_at": started_at,
            "builder_started_at": builder_started,
            "outcome": {k: marker[k] for k in ("reason", "exit_code", "signal", "message")},
            "uploads": dict(marker["uploads"]),
            "source_skipped": self.source_skipped,
            "runner_notes": list(self.notes),
        }
        pack_diagnostics(
            target,
            logs=self.logs if logs else None,
            work=self.work if logs else None,
            metadata=metadata,
            scrubber=self.scrubber,
        )

    def _marker_metadata(self, marker: dict[str, Any]) -> str:
        """The marker as one metadata value: ASCII JSON on one line, at most
        :data:`MARKER_METADATA_CHARS` (all of a blob's metadata may take 8 KiB). Too long a
        message or list of skipped files is cut here; diagnostics' metadata keeps them whole."""
        fitted = dict(marker)
        skipped = list(fitted.get("source_skipped") or [])
        if len(skipped) > MARKER_LISTED_FILES:
            fitted["source_skipped"] = skipped[:MARKER_LISTED_FILES]
            fitted["source_skipped_count"] = len(skipped)
        message = fitted.get("message")
        if isinstance(message, str):
            fitted["message"] = message[:MARKER_MESSAGE_CHARS]
        for cut in (None, "source_skipped", "message"):
            if cut == "source_skipped":
                fitted["source_skipped"], fitted["source_skipped_count"] = [], len(skipped)
            elif cut == "message" and isinstance(message, str):
                fitted["message"] = message[: MARKER_MESSAGE_CHARS // 10]
            scrubbed = self.scrubber.scrub_values(fitted)
            text = json.dumps(scrubbed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            if len(text) <= MARKER_METADATA_CHARS:
                break
        return text


def _parse_inputs(raw: bytes | None) -> tuple[str, str] | None:
    """``(spec_md, tasks_md)`` from the inputs blob (shared/storage/job_blobs.py), or ``None``."""
    if raw is None:
        return None
    try:
        inputs = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(inputs, dict):
        return None
    spec, tasks = inputs.get("spec_md"), inputs.get("tasks_md")
    if not isinstance(spec, str) or not isinstance(tasks, str):
        return None
    return spec, tasks
