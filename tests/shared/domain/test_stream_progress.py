from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.domain.models import JobRecord
from shared.domain.stream_progress import apply_stream_lines, filter_log_lines


def job() -> JobRecord:
    return JobRecord(
        job_id="fj_X",
        app_name="a",
        owner="o",
        request_hash="h",
        created_at=datetime.now(UTC),
        ttl_hours=24,
    )


def lines(*events: dict) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_counts_drive_percent_with_the_contract_formula() -> None:
    rec = apply_stream_lines(
        job(), lines({"event": "counts", "tasks_total": 4, "tasks_completed": 1, "tasks_wip": 1})
    )
    assert rec.percent == 5 + 80 * 2 // 4
    assert rec.detail["tasks_total"] == 4 and rec.detail["tasks_wip"] == 1


def test_percent_never_goes_backwards_and_label_follows_stage_started() -> None:
    rec = apply_stream_lines(
        job(),
        lines(
            {"event": "counts", "tasks_total": 2, "tasks_completed": 2, "tasks_wip": 0},
            {"event": "stage_started", "stage": "implement", "role": "BUILD", "task_id": "T2"},
            {"event": "counts", "tasks_total": 2, "tasks_completed": 0, "tasks_wip": 0},
        ),
    )
    assert rec.percent == 85
    assert rec.stage_label == "BUILD T2"


def test_cost_tokens_and_report() -> None:
    rec = apply_stream_lines(
        job(),
        lines(
            {
                "event": "cost",
                "delta_usd": 0.2,
                "cumulative_usd": 0.2,
                "input_tokens": 10,
                "output_tokens": 3,
            },
            {
                "event": "cost",
                "delta_usd": 0.3,
                "cumulative_usd": 0.5,
                "input_tokens": 5,
                "output_tokens": 2,
            },
        ),
    )
    assert rec.cost_usd == 0.5 and rec.input_tokens == 15 and rec.output_tokens == 5
    assert rec.quality["audit"] == "pending"
    final = apply_stream_lines(
        rec,
        lines(
            {
                "schema_version": 3,
                "cost_usd": 1.3,
                "tasks": [
                    {"id": "T1", "status": "DONE", "findings": {"high": 1, "medium": 0, "low": 2}},
                    {"id": "T2", "status": "wip", "findings": {"high": 0, "medium": 1, "low": 0}},
                ],
            }
        ),
    )
    assert final.cost_usd == 1.3
    assert final.quality == {"audit": "fail", "findings": {"high": 1, "medium": 1, "low": 2}}
    assert final.detail["report_received"] is True


def test_garbage_lines_are_skipped() -> None:
    rec = apply_stream_lines(job(), b'not json\n[1,2]\n{"event":"counts","tasks_total":"x"}\n')
    assert rec.percent == 0


def test_filter_log_lines_stage_and_tail() -> None:
    text = "\n".join(
        json.dumps(e)
        for e in [
            {"event": "stage_started", "stage": "plan"},
            {"event": "counts"},
            {"event": "stage_finished", "stage": "plan"},
            {"event": "stage_started", "stage": "implement"},
        ]
    )
    assert len(filter_log_lines(text, stage="plan", tail=None).splitlines()) == 2
    assert filter_log_lines(text, stage=None, tail=1) == json.dumps(
        {"event": "stage_started", "stage": "implement"}
    )
    assert filter_log_lines(text, stage=None, tail=0) == ""
