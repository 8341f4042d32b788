"""A stand-in for the real ``foundry run --output-format json-stream`` builder.

It reads ``SPEC.md`` and ``TASKS.md`` from the working directory, "implements" each task by
writing a small static app into ``app/``, and prints ``stream.jsonl`` events in the contract's
format to stdout, ending with the SessionReport line. No LLM is called.

Test hooks, written as HTML comments in SPEC.md (so a real spec never trips them by accident):
``<!-- foundry:crash -->`` exits 3 without a report; ``<!-- foundry:sleep=SECONDS -->`` waits
before each task; ``<!-- foundry:wip -->`` leaves the last task WIP (quality audit ``fail``);
``<!-- foundry:no-app -->`` writes no app, so the image step fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import time
from pathlib import Path

TASK_LINE = re.compile(r"^\s*-\s*\[[ xX]\]\s*([A-Za-z0-9_.-]+)\s*:\s*(.+)$")


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def hook(spec: str, name: str) -> str | None:
    match = re.search(r"<!--\s*foundry:" + name + r"(?:=([0-9.]+))?\s*-->", spec)
    if match is None:
        return None
    return match.group(1) or ""


def parse_tasks(tasks_md: str) -> list[tuple[str, str]]:
    tasks = [
        (m.group(1), m.group(2).strip()) for m in map(TASK_LINE.match, tasks_md.splitlines()) if m
    ]
    return tasks or [("T1", "Build the app described in SPEC.md")]


def write_app(root: Path, spec: str) -> None:
    title = next(
        (line.lstrip("# ").strip() for line in spec.splitlines() if line.startswith("#")),
        "Generated app",
    )
    app = root / "app"
    app.mkdir(exist_ok=True)
    body = html.escape(spec)
    (app / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><pre>{body}</pre></body></html>\n"
    )
    (app / "healthz").write_text("ok\n")
    (app / "Dockerfile").write_text(
        "FROM python:3.12-slim\nWORKDIR /srv\nCOPY . .\nENV PORT=8080\n"
        'CMD ["sh", "-c", "python -m http.server ${PORT} --bind 0.0.0.0"]\n'
    )


def main() -> int:
    root = Path.cwd()
    spec = (root / "SPEC.md").read_text()
    tasks = parse_tasks((root / "TASKS.md").read_text())
    delay = float(hook(spec, "sleep") or os.environ.get("FOUNDRY_EXAMPLE_BUILDER_DELAY", "0.05"))
    if not os.environ.get("ANTHROPIC_AUTH_TOKEN") or not os.environ.get("ANTHROPIC_BASE_URL"):
        print("ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN are required", file=sys.stderr)
        return 2
    emit(
        {
            "event_schema_version": 1,
            "event": "stage_started",
            "stage": "plan",
            "role": "PLAN",
            "model": "example",
            "label": None,
            "task_id": None,
        }
    )
    emit(
        {
            "event_schema_version": 1,
            "event": "counts",
            "tasks_total": len(tasks),
            "tasks_completed": 0,
            "tasks_wip": 0,
        }
    )
    cumulative = 0.0
    report_tasks = []
    wip_last = hook(spec, "wip") is not None
    for index, (task_id, description) in enumerate(tasks, start=1):
        if hook(spec, "crash") is not None and index == 1:
            print("example builder: crash requested by SPEC.md", file=sys.stderr)
            return 3
        emit(
            {
                "event_schema_version": 1,
                "event": "stage_started",
                "stage": "implement",
                "role": "BUILD",
                "model": "example",
                "label": description[:80],
                "task_id": task_id,
            }
        )
        emit(
            {
                "event_schema_version": 1,
                "event": "task_started",
                "task_id": task_id,
                "description": description,
            }
        )
        time.sleep(delay)
        is_wip = wip_last and index == len(tasks)
        emit(
            {
                "event_schema_version": 1,
                "event": "task_completed",
                "task_id": task_id,
                "ok": not is_wip,
            }
        )
        cumulative += 0.01
        emit(
            {
                "event_schema_version": 1,
                "event": "cost",
                "delta_usd": 0.01,
                "cumulative_usd": round(cumulative, 4),
                "input_tokens": 1000,
                "output_tokens": 200,
            }
        )
        emit(
            {
                "event_schema_version": 1,
                "event": "counts",
                "tasks_total": len(tasks),
                "tasks_completed": index - (1 if is_wip else 0),
                "tasks_wip": 1 if is_wip else 0,
            }
        )
        emit(
            {
                "event_schema_version": 1,
                "event": "stage_finished",
                "stage": "implement",
                "role": "BUILD",
                "ok": not is_wip,
                "task_id": task_id,
            }
        )
        report_tasks.append(
            {
                "id": task_id,
                "description": description,
                "status": "WIP" if is_wip else "DONE",
                "commit_sha": None,
                "findings": {"high": 0, "medium": 0, "low": 0},
                "duration_secs": delay,
            }
        )
    if hook(spec, "no-app") is None:
        write_app(root, spec)
    emit(
        {
            "schema_version": 3,
            "tasks": report_tasks,
            "session": {
                "total_duration_secs": delay * len(tasks),
                "patterns_injected": 0,
                "patterns_learned": 0,
                "feat_commits": len(tasks),
                "wip_commits": 0,
            },
            "config": {
                "run_mode": "service",
                "builder_provider": "example",
                "builder_model": "example",
                "reviewer_provider": "example",
                "reviewer_model": "example",
            },
            "cost_usd": round(cumulative, 4),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
