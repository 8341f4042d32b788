"""Pid files for the dev server and the processes it starts (``<state>/pids/<name>.json``).

They make two things safe: only one dev server uses a state directory at a time, and a server
that was killed (SIGKILL, power loss of the terminal, ...) leaves nothing that the next start
does not clean up. Each file is a :class:`~shared.backends.processes.ProcessRecord`: a stale
file whose pid now belongs to another program (checked by start time and ``/proc/<pid>/cmdline``)
is removed without signalling anything.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from shared.backends.processes import ProcessRecord, wait_until_gone

log = logging.getLogger("devhost")
SERVER = "server"
SERVER_HINT = "devhost.server"


class StateDirInUse(RuntimeError):
    """Another live dev server owns this state directory."""


class PidFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def claim(self) -> None:
        """Record this process as the state directory's server, unless a live one holds it."""
        holder = ProcessRecord.read(self.path(SERVER))
        if holder is not None and holder.pid != os.getpid() and holder.is_same_process():
            raise StateDirInUse(
                f"dev server pid {holder.pid} is using {self.folder.parent}; stop it first"
            )
        self.record(SERVER, os.getpid(), hint=SERVER_HINT)

    def record(self, name: str, pid: int, *, hint: str) -> None:
        record = ProcessRecord.capture(pid, command_hint=hint)
        if record is not None:
            record.write(self.path(name))

    def release(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def kill_stale(self, *, grace: float = 5.0) -> list[str]:
        """Stop what a previous server left running (every recorded process but the server
        itself): SIGTERM to its group, SIGKILL after ``grace``. Returns the names stopped."""
        stopped = []
        for path in sorted(self.folder.glob("*.json")):
            name = path.stem
            record = ProcessRecord.read(path)
            if name == SERVER or record is None:
                continue
            if record.is_same_process():
                record.signal_group(signal.SIGTERM)
                if not wait_until_gone([record], timeout=grace):
                    record.signal_group(signal.SIGKILL)
                    wait_until_gone([record], timeout=grace)
                log.warning("stopped %s (pid %d) left by a previous dev server", name, record.pid)
                stopped.append(name)
            path.unlink(missing_ok=True)
        return stopped
