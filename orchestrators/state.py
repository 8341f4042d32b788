"""The orchestration's own input: where in the pipeline a (possibly continued-as-new) run is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PHASES = (
    "slot",
    "build",
    "build_wait",
    "image",
    "image_wait",
    "preview",
    "preview_wait",
    "finalize",
)


@dataclass
class RunState:
    job_id: str
    phase: str = "slot"
    #: Polls made in the current phase (drives the backoff; survives continue_as_new).
    round: int = 0
    #: ISO-8601 deadline of the current waiting phase, if it has one.
    deadline: str | None = None
    image_ref: str | None = None
    preview_url: str | None = None
    generation: int = 0
    #: Phase limits returned by start_build (seconds): build, image, deploy.
    limits: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_input(cls, raw: Any) -> RunState:
        if not isinstance(raw, dict) or not isinstance(raw.get("job_id"), str):
            raise ValueError("run_job needs an input object with a job_id")
        state = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        if state.phase not in PHASES:
            raise ValueError(f"unknown phase {state.phase!r}")
        return state

    def enter(self, phase: str, *, deadline: str | None = None) -> None:
        self.phase, self.round, self.deadline = phase, 0, deadline
