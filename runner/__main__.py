"""``python -m runner``: the build container's entrypoint."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from runner.config import ConfigError, RunnerConfig
from runner.proctree import become_subreaper, hide_own_memory
from runner.run import Runner
from runner.scrub import Scrubber


class _ScrubFilter(logging.Filter):
    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrubber.scrub_text(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.scrubber.scrub_text(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


def main() -> int:
    try:
        config = RunnerConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"[runner] cannot start: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[runner] %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ScrubFilter(Scrubber(config.secrets)))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("azure").setLevel(logging.WARNING)
    hide_own_memory()
    become_subreaper()
    runner = Runner(config, reap_all_children=True)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        runner.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    return runner.run()


if __name__ == "__main__":
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed by now; tearing the interpreter down after the Azure SDK
    # was loaded takes about a second more, which every job would wait for.
    os._exit(status)
