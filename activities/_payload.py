"""Payload types and helpers shared by the activity triggers.

Activity inputs are annotated with these ``TypedDict`` classes, not ``dict[str, Any]``: the Python
worker validates every binding annotation before it reports the app to the host, and it accepts
only real classes (or ``typing`` generics) there. ``dict[str, Any]`` is a ``types.GenericAlias``,
which it refuses, and one refused function makes the host index nothing. A ``TypedDict`` is a
class, the activity trigger accepts any class, and mypy still checks the keys.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from shared.domain.models import StepResult
from shared.log_context import job_context

#: What an activity returns: a ``StepResult`` as JSON (the orchestrator reads it back).
StepReply = dict[str, Any]


class JobRef(TypedDict):
    """The input of every activity: the job it acts on."""

    job_id: str


class PreviewStart(JobRef):
    image_ref: str


class ReadyReport(JobRef):
    preview_url: str


class JobFailure(JobRef):
    code: str
    message: str


Payload = TypeVar("Payload", bound=JobRef)


def job_id_of(payload: Any) -> str:
    """The payload's job id; the type above is a promise of the orchestrator, checked here."""
    if not isinstance(payload, dict) or not isinstance(payload.get("job_id"), str):
        raise ValueError("activity payload must be an object with a job_id")
    return str(payload["job_id"])


def reply(result: StepResult) -> StepReply:
    return result.to_dict()


def for_job(activity: Callable[[Payload], StepReply]) -> Callable[[Payload], StepReply]:
    """Run the activity inside its job's logging context (job_id on every log line).

    ``functools.wraps`` copies the annotations and sets ``__wrapped__``, so the worker resolves
    the wrapper's parameter types in the activity's own module: import them there at run time.
    """

    @functools.wraps(activity)
    def wrapper(payload: Payload) -> StepReply:
        with job_context(job_id_of(payload)):
            return activity(payload)

    return wrapper
