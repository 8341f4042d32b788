"""A builder for the benchmark: prints a timestamped line every 0.5 s, then a report."""

import json
import sys
import time
from pathlib import Path

TICKS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
for i in range(TICKS):
    print(
        json.dumps({"event_schema_version": 1, "event": "bench_tick", "n": i, "t": time.time()}),
        flush=True,
    )
    time.sleep(0.5)
app = Path("app")
app.mkdir(exist_ok=True)
(app / "index.html").write_text("<h1>bench</h1>")
(app / "healthz").write_text("ok")
print(json.dumps({"schema_version": 3, "tasks": [], "cost_usd": 0}), flush=True)
