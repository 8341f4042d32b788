"""The ``BuildBackend`` interface. Every method is idempotent and returns quickly: long waits are
the orchestrator's durable timers, never sleeps in here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from shared.domain.models import JobRecord


class StepState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSING = "missing"  # nothing was started (or it was torn down)


@dataclass(frozen=True)
class StepStatus:
    state: StepState
    message: str = ""
    #: Backend-specific, non-secret facts (image reference, preview URL, ...).
    facts: dict[str, str] = field(default_factory=dict)
    #: A failure the caller should report with this failure code instead of the step's default.
    code: str | None = None


@dataclass(frozen=True)
class ResourceRef:
    job_id: str
    kind: str
    name: str


class BuildBackend(Protocol):
    name: str
    #: True when the builder writes ``stream.jsonl`` straight into the job's append blob.
    writes_stream_to_blob: bool
    #: True when the build's end is pushed to the service (the runner's ``finished`` notice),
    #: so the orchestration need not poll for it (the reconciler covers a lost notice).
    notifies_build_end: bool
    #: Seconds between the asks of a long-polling check (``steps._long_poll``): what one ask
    #: costs decides it (an ARM read on Azure, a look at a local process or port here).
    poll_interval_secs: float

    def start_build(self, job: JobRecord, *, proxy_token: str) -> None:
        """Create-or-get the build and start exactly one execution of it."""

    def build_started(self, job_id: str) -> bool:
        """Whether an execution for this job exists already (so a retry must not mint again)."""

    def poll_build(self, job_id: str) -> StepStatus: ...

    def read_stream(self, job_id: str, *, offset: int) -> bytes:
        """New bytes of the builder's ``stream.jsonl`` from ``offset`` (empty if none)."""

    def stop_build(self, job_id: str) -> None: ...

    def collect_artifact(self, job_id: str) -> bytes | None:
        """The generated source as ``tar.gz`` when the backend holds it, ``None`` when the
        builder already uploaded it to the job's blob prefix."""

    def start_image_build(self, job: JobRecord) -> None: ...

    def poll_image_build(self, job_id: str) -> StepStatus: ...

    def deploy_preview(self, job: JobRecord, *, image_ref: str) -> None: ...

    def poll_preview(self, job: JobRecord) -> StepStatus:
        """``SUCCEEDED`` with ``facts['preview_url']`` once the preview answered a health check."""

    def teardown(self, job_id: str) -> list[str]:
        """Delete everything the job created (404 counts as done). Returns what was removed."""

    def list_resources(self) -> list[ResourceRef]:
        """Every resource this backend created, with the job it belongs to (orphan sweep)."""

    def close(self) -> None:
        """Release connections (tests and the dev server call it on shutdown)."""
