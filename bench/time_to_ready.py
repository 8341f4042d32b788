"""Submit -> ready against the builder's own run time, as a new user meets it: the dev server with
its defaults (the bundled example builder, the local backend), the builder asked for a 5 s delay
per task (``<!-- foundry:sleep=5 -->``) on one task plus the preview task it adds (about 10 s).

- ``single``: one job on an idle service; the ratio is submit -> ``ready`` (as a client polling
  every 50 ms sees it) over the builder's own run time.
- ``batch``: 6 jobs on 3 build slots; the ideal makespan is 2 rounds of one build, the ratio is
  first submit -> last ``ready`` over that.

The builder's run time is the build runner's own record of it (``output/result.json``:
``builder_started_at`` to ``builder_finished_at``), read from the local backend's work directory.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.dev_server import DevServer, dev_server
from bench.storage_costs import stop_local_previews

TASK_DELAY_SECS = 5
POLL_SECS = 0.05
JOB_TIMEOUT_SECS = 180.0
TERMINAL = {"ready", "failed", "canceled", "expired"}


def example_job(tag: str) -> dict[str, Any]:
    return {
        "app_name": f"ttr-{tag}",
        "owner": "bench",
        "org_slug": "bench",
        "idempotency_key": f"ttr-{tag}",
        "spec_md": f"# Time to ready\n<!-- foundry:sleep={TASK_DELAY_SECS} -->\n",
        "tasks_md": "- [ ] T1: the page\n",
    }


def builder_secs(server: DevServer, job_id: str) -> float:
    result = json.loads((server.work_dir / job_id / "output" / "result.json").read_text())
    started, finished = (
        datetime.fromisoformat(result[key]) for key in ("builder_started_at", "builder_finished_at")
    )
    return (finished - started).total_seconds()


def _submit(http: httpx.Client, tag: str) -> str:
    reply = http.post("/v1/jobs", json=example_job(tag))
    if reply.status_code != 202:
        raise RuntimeError(f"submit refused: {reply.status_code} {reply.text}")
    return str(reply.json()["job_id"])


def _until_terminal(http: httpx.Client, job_ids: list[str]) -> dict[str, float]:
    """When each job was first seen ``ready`` (monotonic); raises if one ends otherwise."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + JOB_TIMEOUT_SECS
    while len(seen) < len(job_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not ready after {JOB_TIMEOUT_SECS} s: {job_ids}")
        for job_id in job_ids:
            if job_id in seen:
                continue
            status = http.get(f"/v1/jobs/{job_id}").json()["status"]
            if status == "ready":
                seen[job_id] = time.monotonic()
            elif status in TERMINAL:
                raise RuntimeError(f"{job_id} ended {status}")
        time.sleep(POLL_SECS)
    return seen


def single(server: DevServer) -> dict[str, float]:
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as http:
        submitted = time.monotonic()
        job_id = _submit(http, "single")
        ready_at = _until_terminal(http, [job_id])[job_id]
    took, builder = ready_at - submitted, builder_secs(server, job_id)
    return {"submit_to_ready_s": took, "builder_s": builder, "ratio": took / builder}


def batch(server: DevServer, *, jobs: int = 6, slots: int = 3) -> dict[str, float]:
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as http:
        submitted = time.monotonic()
        job_ids = [_submit(http, f"batch-{n}") for n in range(jobs)]
        ready = _until_terminal(http, job_ids)
    makespan = max(ready.values()) - submitted
    builder = statistics.mean(builder_secs(server, job_id) for job_id in job_ids)
    ideal = math.ceil(jobs / slots) * builder
    return {
        "jobs": jobs,
        "slots": slots,
        "makespan_s": makespan,
        "builder_s": builder,
        "ideal_makespan_s": ideal,
        "ratio": makespan / ideal,
    }


def measure(connection: str, scratch: Path) -> dict[str, dict[str, float]]:
    """Both scenarios, each on a fresh dev server with the user's defaults but 3 build slots."""
    figures = {}
    for name, scenario in (("single", single), ("batch", batch)):
        with dev_server(connection, scratch / name, MAX_CONCURRENT_BUILDS="3") as server:
            figures[name] = scenario(server)
        stop_local_previews(connection, server.work_dir)
    return figures


def summary(figures: dict[str, dict[str, float]]) -> str:
    one, many = figures["single"], figures["batch"]
    return (
        f"time to ready (example builder, {TASK_DELAY_SECS} s per task): one job "
        f"{one['submit_to_ready_s']:.1f} s for a builder that ran {one['builder_s']:.1f} s "
        f"({one['ratio']:.2f}x); {many['jobs']} jobs on {many['slots']} slots in "
        f"{many['makespan_s']:.1f} s against an ideal {many['ideal_makespan_s']:.1f} s "
        f"({many['ratio']:.2f}x)"
    )


def main() -> None:
    """``python -m bench.time_to_ready``: these two figures alone, on a fresh Azurite."""
    import tempfile

    from tests.azurite import start_azurite

    scratch = Path(tempfile.mkdtemp(prefix="foundry-ttr-"))
    azurite = start_azurite(scratch / "azurite")
    try:
        figures = measure(azurite.connection_string, scratch)
    finally:
        azurite.stop()
    print(json.dumps(figures, indent=1))
    print(summary(figures))


if __name__ == "__main__":
    main()
