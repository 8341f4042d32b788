"""Run a command that dies with the process that started it.

    python -S parent_death.py PARENT_PID [SIGNAL] -- CMD [ARGS...]

Sets ``PR_SET_PDEATHSIG`` (``SIGNAL``, default KILL) on itself, checks that ``PARENT_PID`` is still
its parent (the parent may have died before the flag was set), then ``exec``s ``CMD``: the flag
survives ``execve``, so the kernel signals ``CMD`` the moment its parent goes away, even when the
parent was SIGKILLed. ``TERM`` suits programs that must flush on the way out (Azurite saves its
database on SIGTERM; SIGKILL would lose its last seconds of writes).

Why a separate exec step instead of ``preexec_fn``: the service that starts builders is
multi-threaded, and Python code in ``preexec_fn`` between ``fork`` and ``exec`` can deadlock there.
This file imports only the standard library, so it runs by path with ``-S`` (no site, fast).

Linux only: elsewhere the flag does not exist and the command runs without it (the pid-record
cleanup is then the only safety net). The kernel sends the signal when the *thread* that forked
the child exits, so callers start children from threads that live as long as the service. And
when a multi-threaded parent dies, the orphan is handed from thread to thread as they exit, with
the signal sent again each time: the command must tolerate repeats (SIGKILL does; Azurite gets a
preload that ignores SIGTERMs after the first, see ``devhost/azurite_sigterm_once.cjs``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies. False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") not in (1, 2) or argv[-1] == "--":
        print("usage: parent_death.py PARENT_PID [SIGNAL] -- CMD [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    parent, command = int(argv[0]), argv[split + 1 :]
    sig = signal.Signals["SIG" + argv[1]] if split == 2 else signal.SIGKILL
    set_parent_death_signal(sig)
    if os.getppid() != parent:  # the parent died before the flag was set: do not start orphaned
        return 1
    # S606: exec'ing the caller's argv unchanged (no shell) is this module's whole purpose.
    os.execvp(command[0], command)  # noqa: S606
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
