"""Pid files: one server per state directory, and a killed server's children are stopped at the
next start, but only if the pid still belongs to the recorded command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.pidfiles import SERVER, SERVER_HINT, PidFiles, StateDirInUse
from shared.backends import processes

SLEEPER = "import time; time.sleep(60)"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def sleeper(started, *tag: str, new_session: bool = True) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", SLEEPER, *tag], start_new_session=new_session)
    started.append(child)
    # Past the moment right after exec when the kernel shows an empty command line.
    deadline = time.monotonic() + 10
    while SLEEPER not in processes.cmdline(child.pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return child


def test_a_live_server_keeps_its_state_dir(tmp_path: Path, started) -> None:
    other = sleeper(started, SERVER_HINT)  # looks like a dev server: the hint is in its cmdline
    pids = PidFiles(tmp_path / "pids")
    pids.record(SERVER, other.pid, hint=SERVER_HINT)
    with pytest.raises(StateDirInUse, match=str(other.pid)):
        pids.claim()
    other.kill()
    other.wait(10)
    pids.claim()  # the holder is gone: ours now
    record = processes.ProcessRecord.read(pids.path(SERVER))
    assert record is not None and record.pid == os.getpid()


def test_stale_children_are_stopped_only_if_the_pid_is_still_theirs(
    tmp_path: Path, started
) -> None:
    pids = PidFiles(tmp_path / "pids")
    leftover = sleeper(started, "azurite-lookalike")
    stranger = sleeper(started, "unrelated")
    pids.record("azurite", leftover.pid, hint="azurite-lookalike")
    # A record whose pid now runs another command (pid reuse): must not be touched.
    pids.record("builder", stranger.pid, hint="the-builder")
    assert sorted(pids.kill_stale(grace=5)) == ["azurite"]
    assert leftover.wait(10) is not None
    assert stranger.poll() is None
    assert list((tmp_path / "pids").glob("*.json")) == []  # stale files removed either way
