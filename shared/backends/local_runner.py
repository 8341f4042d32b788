"""Runs one builder command with a wall-clock limit and records how it ended.

Started by the local backend as ``python -m shared.backends.local_runner JOB_DIR SECS -- CMD``
(in its own session, and through :mod:`shared.backends.parent_death`, so it dies with the
service). stdout goes to ``JOB_DIR/stream.jsonl``, stderr to ``JOB_DIR/stderr.log``; the outcome
is written atomically to ``JOB_DIR/exit.json`` as ``{"exit_code": int, "timed_out": bool}``.

The builder gets its own process group (so the runner can kill the builder's whole tree and still
write ``exit.json``), dies with the runner (``PR_SET_PDEATHSIG``; this process is
single-threaded, so ``preexec_fn`` is safe here), and is recorded in ``JOB_DIR/builder.proc.json``
so the backend can verify it before killing it. When the builder exits, whatever it left running
in its group is killed too: a finished build leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.backends.parent_death import set_parent_death_signal
from shared.backends.processes import ProcessRecord

BUILDER_RECORD = "builder.proc.json"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait for ``pid`` to exit without reaping it, so its pid (= its group id) stays reserved
    until the group has been killed. False on timeout."""
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


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
            command,
            cwd=root / "work",
            stdout=out,
            stderr=err,
            process_group=0,
            preexec_fn=set_parent_death_signal,
        )
        record = ProcessRecord.capture(proc.pid, command_hint=Path(command[0]).name)
        if record is not None:
            record.write(root / BUILDER_RECORD)

        def stop(_sig: int, _frame: object) -> None:
            _kill_group(proc.pid)
            raise SystemExit(143)

        signal.signal(signal.SIGTERM, stop)
        if not _wait_unreaped(proc.pid, time.monotonic() + float(limit)):
            timed_out = True
        _kill_group(proc.pid)  # the builder's leftovers (or the builder itself on timeout)
        code = proc.wait()
    tmp = root / "exit.json.tmp"
    tmp.write_text(json.dumps({"exit_code": code, "timed_out": timed_out}))
    tmp.replace(root / "exit.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
