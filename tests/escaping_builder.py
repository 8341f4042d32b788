"""A builder that tries to outlive its build, for process-cleanup tests.

Before building it starts a grandchild that leaves the builder's process group and session
(``setsid``) and ignores SIGTERM and SIGHUP: only a kill that finds the job's processes by more
than their group can stop it. Its pid goes to ``escaped.pid`` in the working directory, and the
proxy URL the builder was given (never the token) to ``proxy_url.txt``. Then it runs the example
builder, so its SPEC.md hooks (``sleep``, ``crash``, ...) apply and a job can still reach ready.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

EXAMPLE = (
    Path(__file__).resolve().parents[1] / "examples" / "builder" / "foundry_example_builder.py"
)
STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    "time.sleep(600)\n"
)


def main() -> None:
    escaped = subprocess.Popen(
        [sys.executable, "-c", STUBBORN],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    Path("escaped.pid").write_text(str(escaped.pid))
    Path("proxy_url.txt").write_text(os.environ.get("ANTHROPIC_BASE_URL", ""))
    sys.argv = [str(EXAMPLE)]
    runpy.run_path(str(EXAMPLE), run_name="__main__")


if __name__ == "__main__":
    main()
