"""The build runner alone (``python -m bench.runner_follow``, about 15 s): a builder prints a
timestamped line every 0.5 s; how long until each line is readable in the job's stream blob
(p50/max), and how much time the runner adds around the builder (start and finish overhead).
Azurite on loopback, the grant signed by the service's own code."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azure.storage.blob import BlobServiceClient  # noqa: E402

from shared.domain.ids import new_job_id, new_proxy_token  # noqa: E402
from shared.storage.job_blobs import JobBlobs, builder_grant  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402

TICKS = 20


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        azurite = start_azurite(Path(tmp) / "azurite")
        try:
            blobs = JobBlobs(
                BlobServiceClient.from_connection_string(azurite.connection_string),
                container=f"bench-{uuid.uuid4().hex[:8]}",
            )
            blobs.create_container()
            job_id = new_job_id()
            blobs.put_inputs(job_id, spec_md="# bench\n", tasks_md="- [ ] T1: x\n")
            env = {
                **os.environ,
                "FOUNDRY_JOB_ID": job_id,
                "FOUNDRY_STORAGE_GRANT": builder_grant(blobs, job_id, ttl_secs=600),
                "FOUNDRY_BUILDER_COMMAND": shlex.join(
                    [sys.executable, str(ROOT / "bench" / "tick_builder.py"), str(TICKS)]
                ),
                "ANTHROPIC_AUTH_TOKEN": new_proxy_token(),
                "FOUNDRY_RUNNER_WORKDIR": str(Path(tmp) / "workspace"),
            }
            seen: dict[int, float] = {}
            started = time.time()
            runner = subprocess.Popen([sys.executable, "-m", "runner"], cwd=ROOT, env=env)
            while runner.poll() is None:
                for line in blobs.read_log(job_id).splitlines():
                    event = json.loads(line)
                    if event.get("event") == "bench_tick" and event["n"] not in seen:
                        seen[event["n"]] = time.time() - event["t"]
                time.sleep(0.02)
            ended = time.time()
            marker = blobs.result_marker(job_id)
            if marker is None:
                raise SystemExit("the runner left no result marker")
        finally:
            azurite.stop()
    lags = sorted(seen.values())
    builder_start = datetime.fromisoformat(marker["builder_started_at"]).timestamp()
    builder_end = datetime.fromisoformat(marker["builder_finished_at"]).timestamp()
    print(f"stream lines: {len(lags)}/{TICKS} seen while the runner ran")
    print(
        f"write -> visible in the blob: p50 {statistics.median(lags):.3f} s, max {max(lags):.3f} s"
    )
    print(f"runner start -> builder start: {builder_start - started:.2f} s")
    print(f"builder ran {builder_end - builder_start:.2f} s (ticks alone: {TICKS * 0.5:.1f} s)")
    marked = datetime.fromisoformat(marker["finished_at"]).timestamp()
    print(f"builder end -> marker written (flush, uploads): {marked - builder_end:.2f} s")
    print(f"builder end -> runner process gone: {ended - builder_end:.2f} s")


if __name__ == "__main__":
    main()
