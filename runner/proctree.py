"""The builder's process tree: start it in its own session and process group, find every process
that belongs to it, and stop all of them (TERM, a grace period, then KILL).

A process belongs to the tree when it descends from the builder, shares its process group or
session, or carries the tree's marker in its environment (``FOUNDRY_BUILD_TREE``, inherited by
everything the builder starts, so a grandchild that detached with a double fork and ``setsid``
is still found). The entrypoint also makes the runner a child subreaper, so such orphans are
re-parented to it and reaped by it, and gives the builder ``PDEATHSIG=KILL`` so that a runner
killed outright does not leave the builder running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Environment marker shared by every process of one builder tree.
TREE_ENV = "FOUNDRY_BUILD_TREE"
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphans of the builder's tree are re-parented to this process (Linux only)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def hide_own_memory() -> bool:
    """Not dumpable: processes of the same user (the builder) can no longer read this process's
    ``/proc/<pid>/environ`` or memory, where the storage grant lives (Linux only)."""
    return _prctl(_PR_SET_DUMPABLE, 0)


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def read_proc(pid: int) -> ProcInfo | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0])


def all_processes() -> list[ProcInfo]:
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = read_proc(int(entry.name))
            if info is not None:
                found.append(info)
    return found


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        return marker in (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


class BuilderProcess:
    """The builder child. ``pid`` is also its process group and session id."""

    def __init__(
        self,
        command: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdout: int,
        stderr: int,
        reap_all_children: bool = False,
    ) -> None:
        self.tree_id = secrets.token_hex(8)
        self._marker = f"{TREE_ENV}={self.tree_id}".encode()
        self.reap_all_children = reap_all_children
        self.proc = subprocess.Popen(  # noqa: S603 - the builder command the image configures
            command,
            cwd=cwd,
            env={**env, TREE_ENV: self.tree_id},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # the runner has no other threads when it starts this
        )
        self.pid = self.proc.pid
        self.returncode: int | None = None
        self._seen: set[int] = {self.pid}

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def members(self) -> list[ProcInfo]:
        """Live processes of the tree, the builder itself excluded (it is waited for apart)."""
        me = os.getpid()
        procs = all_processes()
        children: dict[int, list[ProcInfo]] = {}
        for info in procs:
            children.setdefault(info.ppid, []).append(info)
        roots = [
            info
            for info in procs
            if info.pid != me
            and not info.zombie
            and (
                info.pgid == self.pid or info.sid == self.pid or _has_marker(info.pid, self._marker)
            )
        ]
        found: dict[int, ProcInfo] = {}
        queue = [*roots, *children.get(self.pid, [])]
        while queue:
            info = queue.pop()
            if info.pid in found or info.pid == me:
                continue
            found[info.pid] = info
            queue.extend(children.get(info.pid, []))
        self._seen.update(found)
        return [p for p in found.values() if p.pid != self.pid and not p.zombie]

    def alive(self) -> bool:
        return self.poll() is None or bool(self.members())

    def _signal_all(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        for info in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, sig)

    def stop(
        self,
        grace: float,
        *,
        tick: Callable[[], None] = lambda: None,
        hurry: Callable[[], bool] = lambda: False,
    ) -> None:
        """TERM the whole tree, wait up to ``grace`` seconds (calling ``tick`` meanwhile, and
        cutting the wait short once ``hurry()``), then KILL whatever is left and reap it."""
        if self.alive():
            self._signal_all(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline and not hurry():
                tick()
                self.reap()
                time.sleep(0.05)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            self._signal_all(signal.SIGKILL)
            self.reap()
            time.sleep(0.05)
        if self.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.returncode = self.proc.wait(timeout=5)
        self.reap()

    def reap(self) -> None:
        """Collect exited children of this process that were part of the tree (orphans
        re-parented to the subreaper), or all of them when this process owns every child (the
        entrypoint). The builder is left to ``Popen``, which must see its exit status itself."""
        me = os.getpid()
        for info in all_processes():
            if info.ppid != me or not info.zombie or info.pid == self.pid:
                continue
            if self.reap_all_children or info.pid in self._seen:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(info.pid, os.WNOHANG)
