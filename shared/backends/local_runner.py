"""Runs one builder command with a wall-clock limit and records how it ended.

Started detached by the local backend as
``python -m shared.backends.local_runner JOB_DIR SECS -- CMD``.
stdout goes to ``JOB_DIR/stream.jsonl``, stderr to ``JOB_DIR/stderr.log``; the outcome is written
atomically to ``JOB_DIR/exit.json`` as ``{"exit_code": int, "timed_out": bool}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    job_dir, limit, sep, *command = argv
    if sep != "--" or not command:
        print("usage: local_runner JOB_DIR SECS -- CMD...", file=sys.stderr)
        return 2
    root = Path(job_dir)
    timed_out = False
    with (root / "stream.jsonl").open("ab") as out, (root / "stderr.log").open("ab") as err:
        # S603: runs the operator-configured builder command; no request data reaches argv.
        proc = subprocess.Popen(  # noqa: S603
            command, cwd=root / "work", stdout=out, stderr=err, start_new_session=True
        )

        def stop(_sig: int, _frame: object) -> None:
            os.killpg(proc.pid, signal.SIGKILL)
            raise SystemExit(143)

        signal.signal(signal.SIGTERM, stop)
        try:
            code = proc.wait(timeout=float(limit))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
            timed_out = True
    tmp = root / "exit.json.tmp"
    tmp.write_text(json.dumps({"exit_code": code, "timed_out": timed_out}))
    tmp.replace(root / "exit.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
