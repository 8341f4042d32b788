"""The orchestration's own input: where in the pipeline a (possibly continued-as-new) run is."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from shared.domain.payloads import PhaseLimits


class Phase(enum.StrEnum):
    """Where a run is. The values are stored in history (continue-as-new input): never rename."""

    #: ``start_build`` until it wins a build slot and starts the build.
    SLOT = "slot"
    #: The build runs; its end arrives as the ``build_finished`` event (or a fallback check).
    BUILD_WAIT = "build_wait"
    #: ``check_image`` until the image is built (it then deploys the preview).
    IMAGE_WAIT = "image_wait"
    #: ``check_preview`` until the preview answers its health probe.
    PREVIEW_WAIT = "preview_wait"
    #: ``finalize_ready``: the job becomes ready.
    FINALIZE = "finalize"


@dataclass
class RunState:
    job_id: str
    phase: Phase = Phase.SLOT
    #: Polls made in the current phase (drives the backoff; survives continue_as_new).
    round: int = 0
    #: ISO-8601 deadline of the current waiting phase, if it has one.
    deadline: str | None = None
    image_ref: str | None = None
    preview_url: str | None = None
    generation: int = 0
    #: Phase limits returned by start_build.
    limits: PhaseLimits | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "phase": self.phase.value,
            "round": self.round,
            "deadline": self.deadline,
            "image_ref": self.image_ref,
            "preview_url": self.preview_url,
            "generation": self.generation,
            "limits": self.limits.to_dict() if self.limits is not None else None,
        }

    @classmethod
    def from_input(cls, raw: Any) -> RunState:
        if not isinstance(raw, dict) or not isinstance(raw.get("job_id"), str):
            raise ValueError("run_job needs an input object with a job_id")
        try:
            phase = Phase(raw.get("phase", Phase.SLOT.value))
        except ValueError:
            raise ValueError(f"unknown phase {raw.get('phase')!r}") from None
        limits = raw.get("limits")
        return cls(
            job_id=raw["job_id"],
            phase=phase,
            round=int(raw.get("round", 0)),
            deadline=raw.get("deadline"),
            image_ref=raw.get("image_ref"),
            preview_url=raw.get("preview_url"),
            generation=int(raw.get("generation", 0)),
            limits=PhaseLimits.from_dict(limits) if limits is not None else None,
        )

    def enter(self, phase: Phase, *, deadline: str | None = None) -> None:
        self.phase, self.round, self.deadline = phase, 0, deadline
