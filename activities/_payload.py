"""Payload helpers shared by the activity triggers."""

from __future__ import annotations

from typing import Any

from shared.models import StepResult


def job_id_of(payload: Any) -> str:
    if not isinstance(payload, dict) or not isinstance(payload.get("job_id"), str):
        raise ValueError("activity payload must be an object with a job_id")
    return str(payload["job_id"])


def reply(result: StepResult) -> dict[str, Any]:
    return result.to_dict()
