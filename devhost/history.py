"""History events in the JSON shape the Durable extension sends to the Python worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

EXECUTION_STARTED = 0
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(kind: int, at: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {
        "EventType": kind,
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": iso(at),
        **fields,
    }


def orchestrator_started(at: datetime) -> dict[str, Any]:
    return event(ORCHESTRATOR_STARTED, at)


def orchestrator_completed(at: datetime) -> dict[str, Any]:
    return event(ORCHESTRATOR_COMPLETED, at)


def execution_started(at: datetime, name: str, input_json: str | None) -> dict[str, Any]:
    return event(
        EXECUTION_STARTED,
        at,
        Name=name,
        Input=input_json,
        Version="",
        OrchestrationInstance=None,
        ParentInstance=None,
        Tags=None,
    )


def task_scheduled(at: datetime, task_id: int, name: str) -> dict[str, Any]:
    return event(TASK_SCHEDULED, at, event_id=task_id, Name=name)


def task_completed(at: datetime, task_id: int, result: Any) -> dict[str, Any]:
    return event(TASK_COMPLETED, at, TaskScheduledId=task_id, Result=json.dumps(result))


def task_failed(at: datetime, task_id: int, reason: str, details: str) -> dict[str, Any]:
    return event(TASK_FAILED, at, TaskScheduledId=task_id, Reason=reason, Details=details)


def timer_created(at: datetime, timer_id: int, fire_at: datetime) -> dict[str, Any]:
    return event(TIMER_CREATED, at, event_id=timer_id, FireAt=iso(fire_at))


def timer_fired(at: datetime, timer_id: int, fire_at: datetime) -> dict[str, Any]:
    return event(TIMER_FIRED, at, TimerId=timer_id, FireAt=iso(fire_at))


def event_raised(at: datetime, name: str, data: Any) -> dict[str, Any]:
    return event(EVENT_RAISED, at, Name=name, Input=json.dumps(data))


def mark_played(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``IsPlayed`` true for every event before the last OrchestratorStarted."""
    last = max(
        (i for i, e in enumerate(history) if e["EventType"] == ORCHESTRATOR_STARTED), default=0
    )
    return [{**e, "IsPlayed": i < last} for i, e in enumerate(history)]
