"""Human-readable text for the operator CLI. Pure functions of the API's JSON shapes (JobView,
history rows, stream events), so ``--json`` and text show the same facts.

Times are ISO 8601 in UTC (``2026-11-23T14:03:12Z``); durations are ``1h02m03s``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

_TERMINAL = {"ready", "failed", "canceled", "expired"}


def iso(value: Any) -> str:
    """A datetime or ISO string as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds); ``-`` if unset."""
    moment = _parse(value)
    if moment is None:
        return "-" if value in (None, "") else str(value)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def duration(start: Any, end: Any) -> str | None:
    begin, finish = _parse(start), _parse(end)
    if begin is None or finish is None:
        return None
    seconds = max(0, int((finish - begin).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def job_row(view: dict[str, Any]) -> str:
    """One line of ``list``."""
    where = f"{view.get('org_slug') or '-'}/{view['app_name']}"
    return (
        f"{view['job_id']}  {view['status']:<9} {view.get('percent', 0):>3}%  "
        f"{iso(view.get('created_at'))}  {view['owner']:<12} {where}  "
        f"{view.get('preview_url') or ''}"
    ).rstrip()


def stage_of(view: dict[str, Any]) -> str | None:
    label = view.get("stage_label")
    current = (view.get("detail") or {}).get("current_stage")
    if label and current:
        return f"{label} ({current})"
    return label or current or None


def progress_line(view: dict[str, Any]) -> str:
    """Where a running job is: status, percent, orchestration phase, current stage, tasks."""
    parts = [f"{view['status']} {view.get('percent', 0)}%", f"phase {view.get('phase') or '-'}"]
    stage = stage_of(view)
    if stage:
        parts.append(f"stage {stage}")
    detail = view.get("detail") or {}
    if detail.get("tasks_total"):
        parts.append(f"tasks {detail.get('tasks_completed', 0)}/{detail['tasks_total']} done")
    return "progress: " + " | ".join(parts)


def final_line(view: dict[str, Any]) -> str:
    """How a job ended (or, for a job still running, where it is)."""
    status = view["status"]
    if status not in _TERMINAL:
        return progress_line(view)
    took = duration(view.get("started_at") or view.get("created_at"), view.get("finished_at"))
    text = f"final: {status}" + (f" after {took}" if took else "")
    if status == "ready":
        text += f" | preview {view.get('preview_url')}"
        if view.get("preview_expires_at"):
            text += f" until {iso(view['preview_expires_at'])}"
    error = view.get("error") or {}
    if error.get("code"):
        text += f" | {error['code']}: {error.get('message') or ''}".rstrip(": ")
    if view.get("cost_usd"):
        text += f" | cost ${float(view['cost_usd']):.2f}"
    return text


def event_line(raw: str) -> str:
    """One ``stream.jsonl`` line as text; lines that are not JSON objects pass through."""
    try:
        event = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(event, dict):
        return raw
    kind = event.get("event")
    if kind is None and event.get("schema_version") == 3:
        return _report_line(event)
    if kind == "stage_started":
        who = " ".join(str(p) for p in (event.get("role"), event.get("task_id")) if p)
        return f"stage   {event.get('stage')} started: {who or '-'} (model {event.get('model')})"
    if kind == "stage_finished":
        outcome = "ok" if event.get("ok") else "NOT ok"
        return f"stage   {event.get('stage')} finished {outcome}"
    if kind == "task_started":
        return f"task    {event.get('task_id')} started: {event.get('description') or ''}".rstrip()
    if kind == "task_completed":
        return f"task    {event.get('task_id')} {'done' if event.get('ok') else 'FAILED'}"
    if kind == "counts":
        return (
            f"tasks   {event.get('tasks_completed', 0)}/{event.get('tasks_total', 0)} done, "
            f"{event.get('tasks_wip', 0)} in progress"
        )
    if kind == "cost":
        return (
            f"cost    ${_money(event.get('cumulative_usd'))} so far "
            f"(+${_money(event.get('delta_usd'))}; {event.get('input_tokens', 0)} in / "
            f"{event.get('output_tokens', 0)} out tokens)"
        )
    rest = {k: v for k, v in event.items() if k not in ("event", "event_schema_version")}
    return f"{kind or 'line'}  {json.dumps(rest, separators=(',', ':'))[:200]}"


def _report_line(report: dict[str, Any]) -> str:
    raw = report.get("tasks")
    tasks: list[dict[str, Any]] = (
        [t for t in raw if isinstance(t, dict)] if isinstance(raw, list) else []
    )
    done = sum(1 for t in tasks if str(t.get("status", "")).upper().startswith("DONE"))
    findings = {"high": 0, "medium": 0, "low": 0}
    for task in tasks:
        for level in findings:
            findings[level] += int((task.get("findings") or {}).get(level) or 0)
    return (
        f"report  {done}/{len(tasks)} tasks done, cost ${_money(report.get('cost_usd'))}, "
        f"findings high {findings['high']} medium {findings['medium']} low {findings['low']}"
    )


def _money(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "?"


def job_summary(
    view: dict[str, Any],
    history: list[dict[str, Any]],
    orchestration: dict[str, Any] | None,
) -> str:
    """``show``: the job in a few aligned lines, then its transitions, oldest first."""
    rows: list[tuple[str, str]] = [
        ("job", f"{view['job_id']}  {view['status']} {view.get('percent', 0)}%"),
        ("app", f"{view.get('org_slug') or '-'}/{view['app_name']}  (owner {view['owner']})"),
        ("phase", view.get("phase") or "-"),
    ]
    stage = stage_of(view)
    if stage:
        rows.append(("stage", stage))
    detail = view.get("detail") or {}
    if detail.get("tasks_total"):
        rows.append(
            (
                "tasks",
                f"{detail.get('tasks_completed', 0)}/{detail['tasks_total']} done, "
                f"{detail.get('tasks_wip', 0)} in progress",
            )
        )
    rows.append(("created", iso(view.get("created_at"))))
    rows.append(("started", iso(view.get("started_at"))))
    finished = iso(view.get("finished_at"))
    took = duration(view.get("started_at") or view.get("created_at"), view.get("finished_at"))
    rows.append(("finished", finished + (f"  (took {took})" if took else "")))
    if view.get("preview_url"):
        rows.append(("preview", str(view["preview_url"])))
        rows.append(("expires", iso(view.get("preview_expires_at"))))
    error = view.get("error") or {}
    if error.get("code"):
        rows.append(("error", f"{error['code']}: {error.get('message') or ''}".rstrip(": ")))
    usage = view.get("usage") or {}
    proxy = usage.get("proxy") or {}
    rows.append(
        (
            "cost",
            f"${float(view.get('cost_usd') or 0):.2f}  ({usage.get('input_tokens', 0)} in / "
            f"{usage.get('output_tokens', 0)} out tokens; proxy {proxy.get('requests', 0)} "
            "requests)",
        )
    )
    quality = view.get("quality") or {}
    found = quality.get("findings") or {}
    rows.append(
        (
            "quality",
            f"{quality.get('audit', '-')}  (findings high {found.get('high', 0)} "
            f"medium {found.get('medium', 0)} low {found.get('low', 0)})",
        )
    )
    if orchestration is not None:
        rows.append(("orchestration", _orchestration(orchestration)))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    if history:
        lines.append("history")
        for row in sorted(history, key=lambda r: str(r.get("RowKey") or iso(r.get("at")))):
            move = f"{row.get('from_status') or '(new)'} -> {row.get('to_status')}"
            lines.append(f"  {iso(row.get('at'))}  {move:<22} {row.get('reason') or ''}".rstrip())
    return "\n".join(lines)


def _orchestration(info: dict[str, Any]) -> str:
    if info.get("error"):
        return f"unknown ({info['error']})"
    status = info.get("runtime_status") or "no instance"
    custom = info.get("custom_status")
    if isinstance(custom, dict) and custom.get("phase"):
        extra = f"phase {custom['phase']}"
        if custom.get("generation"):
            extra += f", generation {custom['generation']}"
        return f"{status} ({extra})"
    return str(status)
