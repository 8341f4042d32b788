"""What every activity trigger shares: the typed payload in, the StepResult dict out."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from shared.domain.models import StepResult
from shared.log_context import job_context


class _JobPayload(Protocol):
    @property
    def job_id(self) -> str: ...


P = TypeVar("P", bound=_JobPayload)
Reply = dict[str, object]


def reply(result: StepResult) -> Reply:
    return result.to_dict()


def for_job(activity: Callable[[P], Reply]) -> Callable[[P], Reply]:
    """Decode the durable payload into the type the activity declares (a missing field fails
    loudly) and run the activity inside its job's logging context (job_id on every line)."""
    payload_type: Any = typing.get_type_hints(activity)["payload"]

    @functools.wraps(activity)
    def wrapper(payload: Any) -> Reply:
        typed = payload_type.from_dict(payload)
        with job_context(typed.job_id):
            return activity(typed)

    return wrapper
