"""The typed contract between ``run_job`` and its activities.

Inputs and results are frozen dataclasses in code and plain dicts only on the durable boundary
(``to_dict`` going in, ``from_dict`` coming out), so the history stays JSON that any replay can
read. ``from_dict`` fails loudly on a missing field: a result that lacks what the orchestrator
reads is a bug in the activity, never a silent default.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar, Self


class PayloadError(ValueError):
    """A dict on the durable boundary does not have the payload's shape."""


class Payload:
    """Mixin for the dataclasses below."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # every subclass is a dataclass

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> Self:
        if not isinstance(raw, dict):
            raise PayloadError(f"{cls.__name__} must be an object, not {type(raw).__name__}")
        declared = fields(cls)
        missing = [
            f.name
            for f in declared
            if f.name not in raw and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise PayloadError(f"{cls.__name__} is missing {', '.join(missing)}")
        return cls(**{f.name: raw[f.name] for f in declared if f.name in raw})


@dataclass(frozen=True)
class JobRef(Payload):
    """The input of every activity that needs only the job."""

    job_id: str


@dataclass(frozen=True)
class PhaseLimits(Payload):
    """Time limits of the waiting phases, in seconds, read from settings by ``start_build`` so
    that the orchestrator never reads settings itself (replays must agree)."""

    build_timeout_secs: int
    image_timeout_secs: int
    deploy_timeout_secs: int
    #: Cap of the backoff between two checks of a step that is still running.
    poll_max_secs: int
    #: 0: the build's end is pushed (``build_finished`` event, raised by the runner's notice or
    #: the reconciler), so the orchestrator sleeps until the deadline. >0: also check the build
    #: on a backoff capped at this many seconds (backends that cannot push).
    build_check_secs: int
    #: >0: the check activities wait up to this long for a change before answering "running",
    #: so the orchestrator calls them again at once instead of sleeping on a durable timer.
    check_wait_secs: int


@dataclass(frozen=True)
class ImageBuilt(Payload):
    image_ref: str


@dataclass(frozen=True)
class PreviewHealthy(Payload):
    preview_url: str


@dataclass(frozen=True)
class FinalizeRequest(Payload):
    job_id: str
    preview_url: str


@dataclass(frozen=True)
class FailRequest(Payload):
    job_id: str
    code: str
    message: str
