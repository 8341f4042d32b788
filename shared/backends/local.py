"""The ``local`` backend, for development: the build runs the same build runner as an ACA job
(``python -m runner``, with a SAS grant on the local storage signed the way the service signs
the ACA job's), the "image" is the app directory it produced, and the preview is a static server
on loopback.

Every job lives in ``<FOUNDRY_SERVICE_LOCAL_WORK_DIR>/<job_id>/``; markers in that directory make
each step create-or-get, so a retried activity finds its earlier effect.

Processes: the build runner starts in its own session and dies with the service
(:mod:`shared.backends.parent_death`); every process of a build carries ``FOUNDRY_LOCAL_JOB_DIR``
in its environment, and the runner is recorded (pid + start time) in the job directory. Stopping
a build kills the recorded process group and then every process still carrying the job's
marker, so cancel, failure, timeout and the reconciler's fail leave nothing running, and the
orphan sweep finds leftovers of a crashed service. Previews deliberately outlive the service
(a ``ready`` job keeps serving across a restart) and are killed by record.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from shared.backends import parent_death, processes
from shared.backends.base import ResourceRef, StepState, StepStatus
from shared.backends.processes import ProcessRecord
from shared.config.settings import Settings
from shared.domain.models import JobRecord
from shared.storage.job_blobs import JobBlobs, builder_grant

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_BUILDER = REPO_ROOT / "examples" / "builder" / "foundry_example_builder.py"
#: Environment marker on every process of a build: the job directory's absolute path.
JOB_MARKER = "FOUNDRY_LOCAL_JOB_DIR"
RUNNER_RECORD = "runner.proc.json"
PREVIEW_RECORD = "preview.proc.json"
RUNNER_MODULE = "runner"
#: How long a stopped build may take to exit on SIGTERM before everything left is SIGKILLed.
STOP_GRACE_SECS = 2.0


class LocalBackend:
    name = "local"
    writes_stream_to_blob = True
    notifies_build_end = False
    #: An ask is a look at /proc or a loopback GET: cheap enough to ask ten times a second, so a
    #: step's end is seen within 0.1 s (1.7 s was lost per step at 2 s).
    poll_interval_secs = 0.1

    def __init__(self, settings: Settings, blobs: JobBlobs) -> None:
        self.settings = settings
        self.blobs = blobs
        self.root = settings.local_root
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- helpers -----------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def _builder_command(self) -> list[str]:
        if self.settings.local_builder_command:
            return shlex.split(self.settings.local_builder_command)
        return [sys.executable, str(EXAMPLE_BUILDER)]

    def _alive(self, record: ProcessRecord | None) -> bool:
        if record is None:
            return False
        child = self._children.get(record.pid)
        if child is not None:
            return child.poll() is None  # also reaps it once it has exited
        return record.is_same_process()

    def _spawn(
        self, args: list[str], *, hint: str, record: Path, with_service: bool, **kwargs: object
    ) -> int:
        """Start ``args`` as the leader of a new session and record it in ``record``.
        ``with_service``: the kernel kills it when this process dies (even by SIGKILL)."""
        if with_service:
            args = [sys.executable, "-S", parent_death.__file__, str(os.getpid()), "--", *args]
        # S603: argv is the operator-configured local builder/preview command, never request data.
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)  # type: ignore[call-overload]  # noqa: S603
        self._children[proc.pid] = proc
        captured = ProcessRecord.capture(proc.pid, command_hint=hint)
        if captured is not None:
            captured.write(record)
        return int(proc.pid)

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    def _kill_build(self, root: Path, *, grace: float = STOP_GRACE_SECS) -> bool:
        """Stop every process of the job's build: SIGTERM to the runner (it stops the builder and
        exits), then, after ``grace``, SIGKILL to the recorded groups and to anything still
        carrying the job's marker (grandchildren that left the group). True if anything ran."""
        records = [r for r in (ProcessRecord.read(root / RUNNER_RECORD),) if r]
        marker = (JOB_MARKER, str(root))
        running = any(self._alive(r) for r in records) or str(root) in set(
            processes.processes_with_env(JOB_MARKER).values()
        )
        if not running:
            self._reap()
            return False
        if grace > 0:
            for record in records:
                record.signal_group(signal.SIGTERM)
            processes.wait_until_gone(records, marker=marker, timeout=grace)
        for _ in range(50):  # a dying tree may still fork: repeat until nothing carries the marker
            for record in records:
                record.signal_group(signal.SIGKILL)
            processes.kill_marked(*marker)
            self._reap()
            if processes.wait_until_gone(records, marker=marker, timeout=0.1):
                break
        for record in records:  # reap our own children: a killed one is a zombie until waited
            child = self._children.pop(record.pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)
        return True

    # -- build -------------------------------------------------------------------------------
    def build_started(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / RUNNER_RECORD).exists()

    def start_build(self, job: JobRecord, *, proxy_token: str) -> None:
        root = self.job_dir(job.job_id)
        work = root / "work"
        work.mkdir(parents=True, exist_ok=True)
        try:  # the O_EXCL marker makes "start" happen once, whatever retries follow
            fd = os.open(root / "started", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "ANTHROPIC_BASE_URL": self.settings.proxy_base_url,
            "ANTHROPIC_AUTH_TOKEN": proxy_token,
            "FOUNDRY_JOB_ID": job.job_id,
            # The same job-side I/O as in Azure: inputs, logs, artifact and the result marker
            # go through a SAS grant signed the way the service signs the ACA job's.
            "FOUNDRY_STORAGE_GRANT": builder_grant(
                self.blobs, job.job_id, ttl_secs=self.settings.grant_ttl_secs
            ),
            "FOUNDRY_BUILDER_COMMAND": shlex.join(self._builder_command()),
            "FOUNDRY_BUILD_EVENTS_URL": (
                f"{self.settings.api_base_url.rstrip('/')}/v1/jobs/{job.job_id}/build-events"
            ),
            "FOUNDRY_RUNNER_WORKDIR": str(root),
            "FOUNDRY_RUNNER_TIMEOUT_SECS": str(self.settings.build_timeout_secs),
            JOB_MARKER: str(root),
        }
        if "FOUNDRY_EXAMPLE_BUILDER_DELAY" in os.environ:
            env["FOUNDRY_EXAMPLE_BUILDER_DELAY"] = os.environ["FOUNDRY_EXAMPLE_BUILDER_DELAY"]
        self._spawn(
            [sys.executable, "-m", RUNNER_MODULE],
            hint=RUNNER_MODULE,
            record=root / RUNNER_RECORD,
            with_service=True,
            env=env,
            cwd=str(REPO_ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def poll_build(self, job_id: str) -> StepStatus:
        root = self.job_dir(job_id)
        record_file = root / RUNNER_RECORD
        if not record_file.exists():
            return StepStatus(StepState.MISSING)
        if self._alive(ProcessRecord.read(record_file)):
            return StepStatus(StepState.RUNNING)
        # The runner is gone: whatever it left running (even outside its group) goes now.
        self._kill_build(root, grace=0)
        marker = root / "output" / "result.json"
        if not marker.exists():
            return StepStatus(
                StepState.FAILED,
                "the build runner is gone without a result: it was killed, or the service "
                "restarted while it ran (builds do not outlive the service)",
            )
        outcome = json.loads(marker.read_text())
        reason, exit_code = outcome.get("reason"), outcome.get("exit_code")
        if reason == "timeout":
            return StepStatus(
                StepState.FAILED, "build exceeded its wall-clock limit", code="build_timeout"
            )
        if reason == "exited" and exit_code == 0:
            return StepStatus(StepState.SUCCEEDED)
        detail = f"exit code {exit_code}" if exit_code is not None else outcome.get("signal")
        return StepStatus(StepState.FAILED, f"builder ended ({reason}, {detail})")

    def read_stream(self, job_id: str, *, offset: int) -> bytes:
        data = self.blobs.read_log(job_id, offset=offset, max_bytes=4 * 1024 * 1024)
        # Only whole lines: a half-written last line is picked up on the next read.
        cut = data.rfind(b"\n")
        return data[: cut + 1] if cut >= 0 else b""

    def stop_build(self, job_id: str) -> None:
        self._kill_build(self.job_dir(job_id))

    def collect_artifact(self, job_id: str) -> bytes | None:
        return None  # the runner uploaded output/source.tar.gz through its grant

    # -- image -------------------------------------------------------------------------------
    def start_image_build(self, job: JobRecord) -> None:
        root = self.job_dir(job.job_id)
        app, image = root / "work" / "app", root / "image"
        if (root / "image.json").exists():
            return
        if not app.is_dir() or not (app / "index.html").exists():
            (root / "image.json").write_text(
                json.dumps({"ok": False, "message": "builder produced no app"})
            )
            return
        if image.exists():
            shutil.rmtree(image)
        shutil.copytree(app, image)
        (root / "image.json").write_text(json.dumps({"ok": True, "ref": f"local:{image}"}))

    def poll_image_build(self, job_id: str) -> StepStatus:
        marker = self.job_dir(job_id) / "image.json"
        if not marker.exists():
            return StepStatus(StepState.MISSING)
        result = json.loads(marker.read_text())
        if result["ok"]:
            return StepStatus(StepState.SUCCEEDED, facts={"image_ref": result["ref"]})
        return StepStatus(StepState.FAILED, result["message"])

    # -- preview -----------------------------------------------------------------------------
    def deploy_preview(self, job: JobRecord, *, image_ref: str) -> None:
        root = self.job_dir(job.job_id)
        state = root / "preview.json"
        if state.exists() and self._alive(ProcessRecord.read(root / PREVIEW_RECORD)):
            return
        with socket.socket() as probe:
            probe.bind((self.settings.local_preview_host, 0))
            port = probe.getsockname()[1]
        pid = self._spawn(
            [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                self.settings.local_preview_host,
                "--directory",
                str(root / "image"),
            ],
            hint="http.server",
            record=root / PREVIEW_RECORD,
            with_service=False,  # a ready job keeps its preview across a service restart
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state.write_text(json.dumps({"pid": pid, "port": port}))

    def poll_preview(self, job: JobRecord) -> StepStatus:
        state = self.job_dir(job.job_id) / "preview.json"
        if not state.exists():
            return StepStatus(StepState.MISSING)
        info = json.loads(state.read_text())
        if not self._alive(ProcessRecord.read(self.job_dir(job.job_id) / PREVIEW_RECORD)):
            return StepStatus(StepState.FAILED, "preview server exited")
        url = f"http://{self.settings.local_preview_host}:{info['port']}/"
        try:
            # S310: the URL is built above from a fixed http:// scheme and the configured host.
            with urllib.request.urlopen(url + "healthz", timeout=2) as resp:  # noqa: S310
                healthy = resp.status == 200
        except (urllib.error.URLError, OSError):
            healthy = False
        if not healthy:
            return StepStatus(StepState.RUNNING, "waiting for the preview to answer")
        return StepStatus(StepState.SUCCEEDED, facts={"preview_url": url})

    # -- teardown ----------------------------------------------------------------------------
    def teardown(self, job_id: str) -> list[str]:
        root = self.job_dir(job_id)
        removed = []
        if self._kill_build(root):
            removed.append("build")
        if self._kill_preview(root):
            removed.append("preview")
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
            removed.append("workdir")
        return removed

    def _kill_preview(self, root: Path) -> bool:
        record = ProcessRecord.read(root / PREVIEW_RECORD)
        if record is None or not self._alive(record):
            return False
        record.signal_group(signal.SIGKILL)
        child = self._children.pop(record.pid, None)
        if child is not None:
            child.wait(timeout=10)
        return True

    def list_resources(self) -> list[ResourceRef]:
        """Job directories, plus live build processes of this work root whose directory may be
        gone already (leftovers of a crashed service)."""
        found = [
            ResourceRef(job_id=p.name, kind="workdir", name=str(p))
            for p in (sorted(self.root.iterdir()) if self.root.exists() else [])
            if p.is_dir() and p.name.startswith("fj_")
        ]
        for pid, job_dir in sorted(leftover_build_processes(self.root).items()):
            found.append(ResourceRef(job_id=Path(job_dir).name, kind="process", name=str(pid)))
        return found

    def close(self) -> None:
        """Nothing to release: previews deliberately outlive the service process."""


def leftover_build_processes(root: Path) -> dict[int, str]:
    """``pid -> job directory`` for every live process of a build under ``root``."""
    prefix = str(root.resolve()) + os.sep
    return {
        pid: job_dir
        for pid, job_dir in processes.processes_with_env(JOB_MARKER).items()
        if job_dir.startswith(prefix)
    }


def kill_stale_builds(root: Path) -> list[int]:
    """At service start: no build under ``root`` can belong to this process yet, so every
    recorded runner/builder that still verifies, and every process carrying a job marker of this
    root, is left over from a previous run. Kill them; return the pids that were running."""
    killed: set[int] = set()
    for folder in sorted(root.glob("fj_*")) if root.exists() else []:
        record = ProcessRecord.read(folder / RUNNER_RECORD)
        if record is not None and record.is_same_process():
            record.signal_group(signal.SIGKILL)
            killed.add(record.pid)
    for pid, marked_dir in leftover_build_processes(root).items():
        killed.update(processes.kill_marked(JOB_MARKER, marked_dir))
        killed.add(pid)
    return sorted(killed)
