"""Builders with awkward behaviour, for the runner's tests: ``python fake_builder.py MODE``.

Every mode first writes its pid to ``builder.pid`` in its work dir. Modes:
  leak    prints its proxy token and SAS signatures (from LEAK_URL) to stdout and stderr, and
          writes them into a source file and a .buildloop note, then exits 0.
  tree    starts a child that ignores SIGTERM and a detached daemon (double fork + setsid),
          writes every pid to ``pids.txt`` in its work dir, then prints a line a second forever.
  burst   writes 8 MiB of lines plus one 5 MiB line without a break, then exits 0.
  sleep   prints one event line, then sleeps forever.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def event(**fields: object) -> None:
    print(json.dumps({"event_schema_version": 1, **fields}), flush=True)


def leak() -> int:
    token = os.environ["ANTHROPIC_AUTH_TOKEN"]
    url = os.environ["LEAK_URL"]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    event(event="stage_started", stage="plan", role="PLAN", note=f"token={token}")
    print(f"calling the proxy with Authorization: Bearer {token}", file=sys.stderr, flush=True)
    print(f"fetching {url}", flush=True)
    print(f"decoded signature {sig} and somebody's ?sv=1&sig=ABCDEFGHIJKLMNOPQRSTUVWX", flush=True)
    print(f"{token}" * 3, file=sys.stderr, flush=True)  # no separator between copies
    Path("config.env").write_text(f"ANTHROPIC_AUTH_TOKEN={token}\nURL={url}\n")
    Path(".buildloop").mkdir(exist_ok=True)
    Path(".buildloop/notes.md").write_text(f"# notes\nused {token} and {sig}\n")
    print(f"grant visible: {'FOUNDRY_STORAGE_GRANT' in os.environ}", flush=True)
    event(event="counts", tasks_total=1, tasks_completed=1, tasks_wip=0)
    print(json.dumps({"schema_version": 3, "tasks": [], "cost_usd": 0.0}), flush=True)
    return 0


def tree() -> int:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
         "while True: time.sleep(1)\n"]
    )  # fmt: skip
    daemon_pid_file = Path("daemon.pid")
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import os, time, sys\n"
         "if os.fork(): os._exit(0)\n"
         "os.setsid()\n"
         "if os.fork(): os._exit(0)\n"
         "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
         "while True: time.sleep(1)\n", str(daemon_pid_file)]
    )  # fmt: skip
    launcher.wait()
    while not daemon_pid_file.exists() or not daemon_pid_file.read_text():
        time.sleep(0.02)
    pids = [os.getpid(), stubborn.pid, int(daemon_pid_file.read_text())]
    Path("pids.txt").write_text("\n".join(map(str, pids)))
    signal.signal(
        signal.SIGTERM, lambda *_: (print("builder got SIGTERM", flush=True), sys.exit(0))
    )
    n = 0
    while True:
        event(event="tick", n=n)
        n += 1
        time.sleep(0.2)


def burst() -> int:
    line = "x" * 999 + "\n"
    out = sys.stdout
    for index in range(8 * 1024):
        out.write(f"{index:08d}" + line[8:])
    out.write("y" * (5 * 1024 * 1024))
    out.flush()
    return 0


def sleep() -> int:
    event(event="stage_started", stage="plan", role="PLAN")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    Path("builder.pid").write_text(str(os.getpid()))
    sys.exit({"leak": leak, "tree": tree, "burst": burst, "sleep": sleep}[sys.argv[1]]())
