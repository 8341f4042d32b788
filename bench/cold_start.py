"""The app's own share of a cold start (``python -m bench.cold_start``, about 15 s): what a fresh
worker process spends, after the platform has started it, before it can answer the first poll.

Each sample is a new interpreter (as a new instance's Python worker) that, timed inside it:

1. imports ``function_app`` (every blueprint, the SDKs they load, the function index), and
2. answers one ``GET /v1/jobs/{id}`` through the app's own function with fresh services (the
   first ``get_services()`` creates the storage clients and makes sure the tables and the
   container exist), against Azurite on loopback.

The platform's share (allocating an instance, starting the Functions host and the worker) cannot
be measured here: no Functions host runs on this machine. docs/cost-model.md puts the two side by
side for the $0-idle configuration.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = 5
KEY = "bench-key"

#: Runs in the fresh interpreter; prints the two timings as JSON.
_PROBE = """
import asyncio, json, time
started = time.perf_counter()
import function_app
imported = time.perf_counter()
from devhost.http_host import FunctionHost
host = FunctionHost(function_app.app, None)
response = asyncio.run(host.request(
    "GET", "/v1/jobs/fj_01J00000000000000000000000",
    headers={"authorization": "Bearer bench-key"},
))
answered = time.perf_counter()
assert response.status_code == 404, response.status_code
print(json.dumps({"import_s": imported - started, "first_poll_s": answered - imported}))
"""


def sample(connection: str) -> dict[str, float]:
    env = {
        **os.environ,
        "FOUNDRY_SERVICE_API_KEYS": KEY,
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": connection,
        "FOUNDRY_SERVICE_TABLE_PREFIX": "cold" + uuid.uuid4().hex[:6],
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": tempfile.mkdtemp(prefix="cold-"),
    }
    out = subprocess.run(  # noqa: S603 - fixed argv: this interpreter runs the probe
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    timings: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return timings


def measure(connection: str, samples: int = SAMPLES) -> dict[str, Any]:
    runs = [sample(connection) for _ in range(samples)]
    imports = [r["import_s"] for r in runs]
    polls = [r["first_poll_s"] for r in runs]
    return {
        "samples": samples,
        "import_p50_s": round(statistics.median(imports), 3),
        "import_max_s": round(max(imports), 3),
        "first_poll_p50_s": round(statistics.median(polls), 3),
        "first_poll_max_s": round(max(polls), 3),
    }


def main() -> None:
    from tests.azurite import start_azurite

    with tempfile.TemporaryDirectory() as tmp:
        azurite = start_azurite(Path(tmp) / "azurite")
        try:
            figures = measure(azurite.connection_string)
        finally:
            azurite.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
