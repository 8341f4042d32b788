"""A BuildBackend test double: each step stays RUNNING until the test lets it finish, and every
resource it "creates" is recorded, so tests can prove teardown leaves nothing behind."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.backends.base import ResourceRef, StepState, StepStatus
from shared.domain.models import JobRecord
from shared.errors import TransientBackendError

STREAM = (
    b'{"event_schema_version":1,"event":"stage_started","stage":"implement","role":"BUILD",'
    b'"model":"m","label":null,"task_id":"T1"}\n'
    b'{"event_schema_version":1,"event":"counts","tasks_total":2,"tasks_completed":1,'
    b'"tasks_wip":0}\n'
    b'{"event_schema_version":1,"event":"cost","delta_usd":0.5,"cumulative_usd":0.5,'
    b'"input_tokens":10,"output_tokens":5}\n'
)
REPORT = (
    b'{"schema_version":3,"tasks":[{"id":"T1","status":"DONE","findings":{"high":0,'
    b'"medium":1,"low":0}}],"cost_usd":0.75}\n'
)


@dataclass
class ScriptedBackend:
    name: str = "scripted"
    writes_stream_to_blob: bool = False
    notifies_build_end: bool = False
    poll_interval_secs: float = 0.05
    resources: dict[str, set[str]] = field(default_factory=dict)
    build_state: dict[str, StepState] = field(default_factory=dict)
    image_state: dict[str, StepState] = field(default_factory=dict)
    preview_state: dict[str, StepState] = field(default_factory=dict)
    stream: dict[str, bytes] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    tokens_seen: list[str] = field(default_factory=list)
    auto: bool = True  # finish every step on the first poll
    flaky_calls: int = 0  # raise TransientBackendError this many times first
    build_failure: StepStatus | None = None

    def _maybe_flake(self) -> None:
        if self.flaky_calls > 0:
            self.flaky_calls -= 1
            raise TransientBackendError("injected: HTTP 503")

    def _own(self, job_id: str, kind: str) -> None:
        self.resources.setdefault(job_id, set()).add(kind)

    def build_started(self, job_id: str) -> bool:
        return job_id in self.build_state

    def start_build(self, job: JobRecord, *, proxy_token: str) -> None:
        self._maybe_flake()
        self.tokens_seen.append(proxy_token)
        self.starts[job.job_id] = self.starts.get(job.job_id, 0) + 1
        self._own(job.job_id, "build")
        self.build_state.setdefault(job.job_id, StepState.RUNNING)
        self.stream[job.job_id] = STREAM

    def finish_build(self, job_id: str, *, report: bool = True) -> None:
        self.build_state[job_id] = StepState.SUCCEEDED
        if report:
            self.stream[job_id] += REPORT

    def poll_build(self, job_id: str) -> StepStatus:
        self._maybe_flake()
        if self.build_failure is not None:
            return self.build_failure
        if self.auto and self.build_state.get(job_id) is StepState.RUNNING:
            self.finish_build(job_id)
        return StepStatus(self.build_state.get(job_id, StepState.MISSING))

    def read_stream(self, job_id: str, *, offset: int) -> bytes:
        return self.stream.get(job_id, b"")[offset:]

    def stop_build(self, job_id: str) -> None:
        if self.build_state.get(job_id) is StepState.RUNNING:
            self.build_state[job_id] = StepState.FAILED

    def collect_artifact(self, job_id: str) -> bytes | None:
        return b"\x1f\x8bfake-tarball"

    def start_image_build(self, job: JobRecord) -> None:
        self._own(job.job_id, "image")
        self.image_state.setdefault(job.job_id, StepState.RUNNING)

    def poll_image_build(self, job_id: str) -> StepStatus:
        if self.auto and self.image_state.get(job_id) is StepState.RUNNING:
            self.image_state[job_id] = StepState.SUCCEEDED
        state = self.image_state.get(job_id, StepState.MISSING)
        return StepStatus(state, facts={"image_ref": f"registry/{job_id.lower()}:1"})

    def deploy_preview(self, job: JobRecord, *, image_ref: str) -> None:
        self._own(job.job_id, "preview")
        self.preview_state.setdefault(job.job_id, StepState.RUNNING)

    def poll_preview(self, job: JobRecord) -> StepStatus:
        if self.auto and self.preview_state.get(job.job_id) is StepState.RUNNING:
            self.preview_state[job.job_id] = StepState.SUCCEEDED
        state = self.preview_state.get(job.job_id, StepState.MISSING)
        return StepStatus(state, facts={"preview_url": f"https://{job.app_name}.example.test"})

    def teardown(self, job_id: str) -> list[str]:
        removed = sorted(self.resources.pop(job_id, set()))
        for table in (self.build_state, self.image_state, self.preview_state):
            if table.get(job_id) is StepState.RUNNING:
                table[job_id] = StepState.FAILED
        return removed

    def list_resources(self) -> list[ResourceRef]:
        return [
            ResourceRef(job_id, kind, kind)
            for job_id, kinds in self.resources.items()
            for kind in sorted(kinds)
        ]

    def close(self) -> None:
        pass
