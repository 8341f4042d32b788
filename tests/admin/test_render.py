"""The CLI's text for people: every stream event kind, durations, ISO times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from admin import render


def ev(**fields) -> str:
    return json.dumps({"event_schema_version": 1, **fields})


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (ev(event="stage_started", stage="plan", role="PLAN", model="m", label=None, task_id=None),
         "stage   plan started: PLAN (model m)"),
        (ev(event="stage_finished", stage="plan", role="PLAN", ok=True, task_id=None),
         "stage   plan finished ok"),
        (ev(event="stage_finished", stage="doubt", role="AUDIT", ok=False, task_id="T2"),
         "stage   doubt finished NOT ok"),
        (ev(event="task_started", task_id="T2", description="Style it"), "task    T2 started: Style it"),
        (ev(event="task_completed", task_id="T2", ok=False), "task    T2 FAILED"),
        (ev(event="counts", tasks_total=3, tasks_completed=1, tasks_wip=1),
         "tasks   1/3 done, 1 in progress"),
        (ev(event="cost", delta_usd=0.125, cumulative_usd=1.5, input_tokens=7, output_tokens=3),
         "cost    $1.50 so far (+$0.12; 7 in / 3 out tokens)"),
        (json.dumps({"schema_version": 3, "tasks": [
            {"id": "T1", "status": "DONE", "findings": {"high": 1, "medium": 0, "low": 2}},
            {"id": "T2", "status": "WIP: half", "findings": {"high": 0, "medium": 1, "low": 0}},
        ], "cost_usd": 1.3}), "report  1/2 tasks done, cost $1.30, findings high 1 medium 1 low 2"),
        (ev(event="budget", spent=1), 'budget  {"spent":1}'),
        ("plain text from a builder", "plain text from a builder"),
        ("[1, 2]", "[1, 2]"),
    ],
)  # fmt: skip
def test_event_lines(line: str, text: str) -> None:
    assert render.event_line(line) == text


def test_iso_and_durations() -> None:
    moment = datetime(2026, 11, 23, 15, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert render.iso(moment) == "2026-11-23T14:04:05Z"
    assert render.iso("2026-11-23T14:04:05.5+00:00") == "2026-11-23T14:04:05Z"
    assert render.iso(None) == "-"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert render.duration(start, start + timedelta(seconds=42)) == "42s"
    assert render.duration(start, start + timedelta(minutes=3, seconds=2)) == "3m02s"
    assert render.duration(start.isoformat(), start + timedelta(hours=1, seconds=5)) == "1h00m05s"
    assert render.duration(None, start) is None


def view(**fields) -> dict:
    base = {
        "job_id": "fj_1", "app_name": "demo", "org_slug": "acme", "owner": "me",
        "status": "building", "phase": "build_wait", "percent": 45, "stage_label": "BUILD T1",
        "detail": {"tasks_total": 2, "tasks_completed": 1, "current_stage": "implement"},
        "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:10Z",
        "finished_at": None, "preview_url": None, "error": None, "cost_usd": 0.0,
    }  # fmt: skip
    return {**base, **fields}


def test_progress_and_final_lines() -> None:
    assert render.progress_line(view()) == (
        "progress: building 45% | phase build_wait | stage BUILD T1 (implement) | tasks 1/2 done"
    )
    assert render.final_line(view()) == render.progress_line(view())  # not ended yet
    failed = view(
        status="failed",
        finished_at="2026-01-01T00:02:10Z",
        error={"code": "build_crashed", "message": "no report"},
        cost_usd=0.4,
    )
    assert render.final_line(failed) == (
        "final: failed after 2m00s | build_crashed: no report | cost $0.40"
    )
    ready = view(
        status="ready",
        finished_at="2026-01-01T00:00:40Z",
        preview_url="https://demo.acme.example",
        preview_expires_at="2026-01-02T00:00:40Z",
    )
    assert render.final_line(ready) == (
        "final: ready after 30s | preview https://demo.acme.example until 2026-01-02T00:00:40Z"
    )
