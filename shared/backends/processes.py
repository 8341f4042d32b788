"""Recording, finding and killing local processes without hitting the wrong one (Linux ``/proc``).

A pid alone is not an identity: once a process is gone the kernel hands its pid to the next
process that needs one. A :class:`ProcessRecord` therefore keeps the pid together with its start
time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot, unchanged by ``exec``), the boot
id, and a fragment its command line must contain. Nothing is signalled unless the record still
identifies the live process, or the process is gone and only members of its own group can remain
(a pid stays reserved while a process group of that id has members, so such a group is ours).

Processes that escape their group (``setsid``) are found by an environment marker instead: every
process the local backend starts carries ``FOUNDRY_LOCAL_JOB_DIR``, and children inherit it.

On systems without ``/proc`` the helpers degrade to "cannot verify": records never match and
scans find nothing, so nothing is killed by guesswork.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

PROC = Path("/proc")


def boot_id() -> str:
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (which may contain spaces and parentheses):
    index 0 is the state (field 3), index 19 the start time (field 22)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_running(pid: int) -> bool:
    """The pid exists and is not a zombie (a zombie has exited; only its exit status is left)."""
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    """The command line with arguments joined by spaces ("" if unreadable or gone)."""
    try:
        return (
            (PROC / str(pid) / "cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return ""


def environ_value(pid: int, name: str) -> str | None:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode("utf-8", "replace")
    return None


def processes_with_env(name: str) -> dict[int, str]:
    """``pid -> value`` of the environment variable ``name`` for every live process carrying it
    whose environment this user may read (never this process itself)."""
    found: dict[int, str] = {}
    try:
        entries = list(os.scandir(PROC))
    except OSError:
        return found
    me = os.getpid()
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        value = environ_value(pid, name)
        if value is not None and is_running(pid):
            found[pid] = value
    return found


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    pgid: int
    start_ticks: int
    boot_id: str
    #: A fragment of ``/proc/<pid>/cmdline`` that identifies the command (after any ``exec``).
    command_hint: str = ""

    @classmethod
    def capture(cls, pid: int, *, command_hint: str = "") -> ProcessRecord | None:
        """Record a process that exists now (call right after starting it). ``None`` without
        ``/proc``: such a record could never be verified, so none is kept."""
        ticks = start_ticks(pid)
        if ticks is None:
            return None
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = pid
        return cls(pid, pgid, ticks, boot_id(), command_hint)

    def is_same_process(self) -> bool:
        """The pid still belongs to the recorded process: same boot, same start time, running,
        and its command line shows the hint (an empty one is read mid-``exec``, right after a
        start: the start time already proves it is the same process)."""
        if self.boot_id != boot_id() or start_ticks(self.pid) != self.start_ticks:
            return False
        command = cmdline(self.pid)
        return is_running(self.pid) and (self.command_hint in command or not command)

    def pid_is_free(self) -> bool:
        """No process of this pid exists (a zombie still holds its pid)."""
        return start_ticks(self.pid) is None

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the recorded process group when that is provably ours: the leader is
        the recorded process, or it is gone (then only members of its group can hold the id).
        Anything else (pid reused, other boot) is left alone. True if a signal was delivered."""
        if self.boot_id != boot_id():
            return False
        command = cmdline(self.pid)
        leader_is_ours = start_ticks(self.pid) == self.start_ticks and (
            self.command_hint in command or not command or not is_running(self.pid)
        )
        if not (leader_is_ours or self.pid_is_free()):
            return False
        target = self.pgid if self.pgid == self.pid else None
        try:
            if target is not None:
                os.killpg(target, sig)
            elif leader_is_ours:
                os.kill(self.pid, sig)
            else:
                return False
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def kill_marked(name: str, value: str, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every live process whose environment has ``name=value``. Returns their pids."""
    hit = []
    for pid, found in processes_with_env(name).items():
        if found != value:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Re-read right before signalling: the pid must still carry the marker.
            if environ_value(pid, name) == value:
                os.kill(pid, sig)
                hit.append(pid)
    return hit


def wait_until_gone(
    records: Iterable[ProcessRecord], *, marker: tuple[str, str] | None = None, timeout: float
) -> bool:
    """Wait until no recorded process runs (and none carries ``marker``). True if all are gone."""
    pending = list(records)
    deadline = time.monotonic() + timeout
    while True:
        alive = [r for r in pending if r.is_same_process()]
        marked = marker is not None and marker[1] in processes_with_env(marker[0]).values()
        if not alive and not marked:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
