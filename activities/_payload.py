"""Payload helpers shared by the activity triggers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from shared.domain.models import StepResult
from shared.log_context import job_context


def job_id_of(payload: Any) -> str:
    if not isinstance(payload, dict) or not isinstance(payload.get("job_id"), str):
        raise ValueError("activity payload must be an object with a job_id")
    return str(payload["job_id"])


def reply(result: StepResult) -> dict[str, Any]:
    return result.to_dict()


def for_job(
    activity: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Run the activity inside its job's logging context (job_id on every log line)."""

    @functools.wraps(activity)
    def wrapper(payload: dict[str, Any]) -> dict[str, Any]:
        with job_context(job_id_of(payload)):
            return activity(payload)

    return wrapper
