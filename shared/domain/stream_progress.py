"""Turns the builder's ``stream.jsonl`` events into job progress, incrementally.

percent = 5 + 80 * (completed + wip) / total (the contract's formula); ``stage_label`` is
``"<role> <task_id>"`` of the last ``stage_started``; cost and tokens come from ``cost`` events and
the terminal SessionReport (``schema_version: 3``), which also decides ``quality``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from shared.domain.json_body import MalformedJson, load_json
from shared.domain.models import JobRecord

BUILD_PERCENT_START = 5
BUILD_PERCENT_SPAN = 80


def apply_stream_lines(record: JobRecord, data: bytes) -> JobRecord:
    """Fold complete lines of ``data`` into a copy of ``record`` (unparseable lines are skipped)."""
    detail: dict[str, Any] = dict(record.detail)
    quality: dict[str, Any] = json.loads(json.dumps(record.quality))
    changes: dict[str, Any] = {}
    percent, label = record.percent, record.stage_label
    cost, tokens_in, tokens_out = record.cost_usd, record.input_tokens, record.output_tokens
    for raw in data.splitlines():
        try:
            event = load_json(raw)
        except MalformedJson:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "stage_started":
            role, task = event.get("role") or "", event.get("task_id")
            label = f"{role} {task}".strip() if task else (role or label)
            detail["current_stage"] = str(event.get("stage") or "")
        elif kind == "counts":
            total = _int(event.get("tasks_total"))
            done, wip = _int(event.get("tasks_completed")), _int(event.get("tasks_wip"))
            detail.update(tasks_total=total, tasks_completed=done, tasks_wip=wip)
            if total > 0:
                percent = max(
                    percent,
                    BUILD_PERCENT_START + (BUILD_PERCENT_SPAN * min(done + wip, total)) // total,
                )
        elif kind == "cost":
            cost = max(cost, _float(event.get("cumulative_usd")))
            tokens_in += _int(event.get("input_tokens"))
            tokens_out += _int(event.get("output_tokens"))
        elif kind is None and event.get("schema_version") == 3:
            tasks = event.get("tasks") or []
            findings = {"high": 0, "medium": 0, "low": 0}
            wip = False
            for task in tasks if isinstance(tasks, list) else []:
                if str(task.get("status", "")).lower().startswith("wip"):
                    wip = True
                for level in findings:
                    findings[level] += _int((task.get("findings") or {}).get(level))
            quality = {"audit": "fail" if wip else "pass", "findings": findings}
            if event.get("cost_usd") is not None:
                cost = _float(event.get("cost_usd"))
            detail["report_received"] = True
    changes.update(
        detail=detail,
        quality=quality,
        percent=percent,
        stage_label=label,
        cost_usd=round(cost, 6),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
    )
    return replace(record, **changes)


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def filter_log_lines(text: str, *, stage: str | None, tail: int | None) -> str:
    """The contract's ``?stage=&tail=`` filtering of the plain-text log."""
    lines = [line for line in text.split("\n") if line]
    if stage:
        kept = []
        for line in lines:
            try:
                event = load_json(line)
            except MalformedJson:
                continue
            if isinstance(event, dict) and event.get("stage") == stage:
                kept.append(line)
        lines = kept
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return "\n".join(lines)
