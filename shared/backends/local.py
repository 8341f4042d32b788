"""The ``local`` backend, for development: the builder runs as a subprocess with a time limit,
the "image" is the app directory it produced, and the preview is a static server on loopback.

Every job lives in ``<FOUNDRY_SERVICE_LOCAL_WORK_DIR>/<job_id>/``; markers in that directory make
each step create-or-get, so a retried activity finds its earlier effect.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from shared.backends.base import ResourceRef, StepState, StepStatus
from shared.config.settings import Settings
from shared.domain.models import JobRecord
from shared.storage.job_blobs import SPEC_PATH, TASKS_PATH, JobBlobs

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_BUILDER = REPO_ROOT / "examples" / "builder" / "foundry_example_builder.py"
PREVIEW_CONTRACT_TASK = (
    "\n- [ ] TPREVIEW.1: Produce a root-level Dockerfile that serves the app, binds 0.0.0.0 "
    "on $PORT (default 8080), and answers HTTP 200 on / or /healthz. SQLite or in-memory "
    "storage only. Do not set X-Frame-Options or a frame-ancestors CSP.\n"
)
_EXCLUDED_FROM_SOURCE = {".buildloop", "node_modules", "target", "dist"}


class LocalBackend:
    name = "local"
    writes_stream_to_blob = False
    notifies_build_end = False

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

    def _alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.exists() and ") Z " in stat.read_text())

    def _spawn(self, args: list[str], **kwargs: object) -> int:
        # S603: argv is the operator-configured local builder/preview command, never request data.
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)  # type: ignore[call-overload]  # noqa: S603
        self._children[proc.pid] = proc
        return int(proc.pid)

    def _kill_group(self, pid_file: Path) -> bool:
        if not pid_file.exists():
            return False
        pid = int(pid_file.read_text().strip() or 0)
        if pid and self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            child = self._children.pop(pid, None)
            if child is not None:
                child.wait(timeout=10)
            return True
        return False

    # -- build -------------------------------------------------------------------------------
    def build_started(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / "runner.pid").exists()

    def start_build(self, job: JobRecord, *, proxy_token: str) -> None:
        root = self.job_dir(job.job_id)
        work = root / "work"
        work.mkdir(parents=True, exist_ok=True)
        try:  # the O_EXCL marker makes "start" happen once, whatever retries follow
            fd = os.open(root / "started", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        (work / "SPEC.md").write_text(self.blobs.read_text(job.job_id, SPEC_PATH))
        (work / "TASKS.md").write_text(
            self.blobs.read_text(job.job_id, TASKS_PATH) + PREVIEW_CONTRACT_TASK
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "ANTHROPIC_BASE_URL": self.settings.proxy_base_url,
            "ANTHROPIC_AUTH_TOKEN": proxy_token,
            "FOUNDRY_JOB_ID": job.job_id,
        }
        if "FOUNDRY_EXAMPLE_BUILDER_DELAY" in os.environ:
            env["FOUNDRY_EXAMPLE_BUILDER_DELAY"] = os.environ["FOUNDRY_EXAMPLE_BUILDER_DELAY"]
        runner = [
            sys.executable,
            "-m",
            "shared.backends.local_runner",
            str(root),
            str(self.settings.build_timeout_secs),
            "--",
            *self._builder_command(),
        ]
        pid = self._spawn(
            runner,
            env=env,
            cwd=str(REPO_ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (root / "runner.pid").write_text(str(pid))

    def poll_build(self, job_id: str) -> StepStatus:
        root = self.job_dir(job_id)
        exit_file = root / "exit.json"
        if exit_file.exists():
            outcome = json.loads(exit_file.read_text())
            if outcome.get("timed_out"):
                return StepStatus(
                    StepState.FAILED, "build exceeded its wall-clock limit", code="build_timeout"
                )
            if outcome.get("exit_code") == 0:
                return StepStatus(StepState.SUCCEEDED)
            return StepStatus(StepState.FAILED, f"builder exited with {outcome.get('exit_code')}")
        pid_file = root / "runner.pid"
        if not pid_file.exists():
            return StepStatus(StepState.MISSING)
        if self._alive(int(pid_file.read_text())):
            return StepStatus(StepState.RUNNING)
        return StepStatus(StepState.FAILED, "builder runner disappeared")

    def read_stream(self, job_id: str, *, offset: int) -> bytes:
        path = self.job_dir(job_id) / "stream.jsonl"
        if not path.exists():
            return b""
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
        # Only whole lines: a half-written last line is picked up on the next poll.
        cut = data.rfind(b"\n")
        return data[: cut + 1] if cut >= 0 else b""

    def stop_build(self, job_id: str) -> None:
        self._kill_group(self.job_dir(job_id) / "runner.pid")

    def collect_artifact(self, job_id: str) -> bytes | None:
        work = self.job_dir(job_id) / "work"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            if work.exists():
                tar.add(work, arcname=".", filter=_source_filter)
        return buffer.getvalue()

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
        if state.exists() and self._alive(json.loads(state.read_text())["pid"]):
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
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state.write_text(json.dumps({"pid": pid, "port": port}))
        (root / "preview.pid").write_text(str(pid))

    def poll_preview(self, job: JobRecord) -> StepStatus:
        state = self.job_dir(job.job_id) / "preview.json"
        if not state.exists():
            return StepStatus(StepState.MISSING)
        info = json.loads(state.read_text())
        if not self._alive(info["pid"]):
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
        if self._kill_group(root / "runner.pid"):
            removed.append("build")
        if self._kill_group(root / "preview.pid"):
            removed.append("preview")
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
            removed.append("workdir")
        return removed

    def list_resources(self) -> list[ResourceRef]:
        if not self.root.exists():
            return []
        return [
            ResourceRef(job_id=p.name, kind="workdir", name=str(p))
            for p in sorted(self.root.iterdir())
            if p.is_dir() and p.name.startswith("fj_")
        ]

    def close(self) -> None:
        """Nothing to release: previews deliberately outlive the service process."""


def _source_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    return None if any(part in _EXCLUDED_FROM_SOURCE for part in parts) else info
