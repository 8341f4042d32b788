"""The parent-death shim: the command it execs is signalled by the kernel when the process that
started it dies, even by SIGKILL (Linux)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from shared.backends import parent_death, processes

PARENT = """
import os, subprocess, sys, time
shim, extra = sys.argv[1], sys.argv[2:]
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
child = subprocess.Popen([sys.executable, "-S", shim, str(os.getpid()), *extra, "--", *sleeper])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("extra", [[], ["TERM"]], ids=["kill", "term"])
def test_the_child_dies_with_its_parent(extra: list[str]) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, parent_death.__file__, *extra], stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while "time.sleep" not in processes.cmdline(child):  # exec'd past the shim
            assert time.monotonic() < deadline
            time.sleep(0.02)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while processes.is_running(child):
            assert time.monotonic() < deadline, "the child outlived its parent"
            time.sleep(0.02)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_usage_errors_start_nothing() -> None:
    assert parent_death.main(["1", "echo"]) == 2
    assert parent_death.main(["1", "TERM", "--"]) == 2
    # The parent it names is not its parent (above any pid Linux hands out): it refuses to
    # start what would be an orphan already.
    code = subprocess.run(
        [sys.executable, "-S", parent_death.__file__, "4194305", "--", "true"], check=False
    ).returncode
    assert code == 1
