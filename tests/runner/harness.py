"""A job as the service sets it up before it starts a build: inputs stored and a storage grant
signed by the service's own signing code (the runner creates the log blobs). The runner then runs against it
(on Azurite) in a subprocess, as in the container, or in-process where a test injects faults."""

from __future__ import annotations

import gzip
import io
import json
import shlex
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport

from runner.config import RunnerConfig
from runner.run import Runner
from runner.storage import sas_blob_client
from shared.domain.ids import new_job_id, new_proxy_token
from shared.storage.job_blobs import STDERR_PATH, JobBlobs, builder_grant, job_blob

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_BUILDER = ROOT / "examples" / "builder" / "foundry_example_builder.py"
FAKE_BUILDER = Path(__file__).with_name("fake_builder.py")


@dataclass
class Job:
    blobs: JobBlobs
    job_id: str
    token: str
    grant: str
    workspace: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, builder: list[str], **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "FOUNDRY_JOB_ID": self.job_id,
            "FOUNDRY_STORAGE_GRANT": self.grant,
            "FOUNDRY_BUILDER_COMMAND": shlex.join(builder),
            "ANTHROPIC_AUTH_TOKEN": self.token,
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
            "FOUNDRY_RUNNER_WORKDIR": str(self.workspace),
            "FOUNDRY_RUNNER_TERM_GRACE_SECS": "2",
            **self.extra_env,
            **extra,
        }

    def start(self, builder: list[str], **extra: str) -> subprocess.Popen[bytes]:
        """``python -m runner`` as the container's entrypoint runs it."""
        return subprocess.Popen(
            [sys.executable, "-m", "runner"],
            cwd=ROOT,
            env=self.env(builder, **extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def run(self, builder: list[str], **extra: str) -> tuple[int, str]:
        proc = self.start(builder, **extra)
        out, _ = proc.communicate(timeout=90)
        return proc.returncode, out.decode(errors="replace")

    # -- what the service would read -----------------------------------------------------------
    def blob(self, relative: str) -> bytes:
        return self.blobs.read_bytes(self.job_id, relative)

    def stream(self) -> bytes:
        return self.blobs.read_log(self.job_id)

    def stderr(self) -> bytes:
        return self.blob(STDERR_PATH)

    def marker(self) -> dict:
        marker = self.blobs.result_marker(self.job_id)
        assert marker is not None, "no result marker on the diagnostics archive"
        return marker

    def every_blob(self) -> dict[str, bytes]:
        """Every blob of the job, archives unpacked member by member."""
        found: dict[str, bytes] = {}
        prefix = job_blob(self.job_id, "")
        for props in self.blobs.container.list_blobs(name_starts_with=prefix):
            data = self.blobs.container.download_blob(props.name).readall()
            found[props.name] = data
            if props.name.endswith(".tar.gz"):
                found[props.name + "!gunzip"] = gzip.decompress(data)
                for name, content in tar_members(data).items():
                    found[f"{props.name}!{name}"] = content
        return found


def tar_members(data: bytes) -> dict[str, bytes]:
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            members[member.name] = extracted.read() if extracted else b""
    return members


def make_job(blobs: JobBlobs, workspace: Path, *, spec_md: str, tasks_md: str) -> Job:
    """What the service's submit and start_build steps do before the build job starts."""
    job_id = new_job_id()
    blobs.put_inputs(job_id, spec_md=spec_md, tasks_md=tasks_md)
    grant = builder_grant(blobs, job_id, ttl_secs=900)
    return Job(blobs, job_id, new_proxy_token(), grant, workspace)


def example_builder() -> list[str]:
    return [sys.executable, str(EXAMPLE_BUILDER)]


def fake_builder(mode: str) -> list[str]:
    return [sys.executable, str(FAKE_BUILDER), mode]


class AppendRecorder(RequestsTransport):  # type: ignore[misc]
    """A real HTTP transport that records the size of every append and can lose the replies of
    chosen appends after the service has applied them (as a dropped connection would)."""

    def __init__(self, *, lose_replies: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.append_sizes: list[int] = []
        self.lose_replies = set(lose_replies)

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if "comp=appendblock" in request.url:
            self.append_sizes.append(len(request.body or b""))
            if len(self.append_sizes) in self.lose_replies:
                raise ServiceResponseError("injected: the reply to this append was lost")
        return response


def run_in_process(
    job: Job, builder: list[str], transport: RequestsTransport, **extra: str
) -> tuple[int, RunnerConfig]:
    """The runner in this process, its blob clients on ``transport``."""
    config = RunnerConfig.from_env(job.env(builder, **extra))
    runner = Runner(config, blob_factory=lambda url: sas_blob_client(url, transport=transport))
    return runner.run(), config


class NoticeServer:
    """A stand-in for the service's build-events route on loopback: records each notice (event,
    bearer token, whether the result marker already existed) and answers ``status``."""

    def __init__(self, job: Job, status: int = 202) -> None:
        self.job = job
        self.status = status
        self.notices: list[dict[str, object]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.notices.append(
                    {
                        "path": self.path,
                        "event": json.loads(body).get("event"),
                        "authorization": self.headers.get("Authorization"),
                        "marker_written": server.job.blobs.result_marker(server.job.job_id)
                        is not None,
                    }
                )
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/jobs/{self.job.job_id}/build-events"

    def events(self) -> list[object]:
        return [n["event"] for n in self.notices]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
