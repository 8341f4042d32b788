"""How a build ended, the result marker that records it, and the runner's own exit status."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

#: The builder ran and exited by itself (any exit code, or a signal nobody here sent).
EXITED = "exited"
#: The runner's wall-clock limit (FOUNDRY_RUNNER_TIMEOUT_SECS) stopped the builder.
TIMEOUT = "timeout"
#: SIGTERM/SIGINT reached the runner (ACA stop-execution, replica timeout, local cancel).
TERMINATED = "terminated"
#: The builder never started: storage, inputs or the command itself failed.
START_FAILED = "start_failed"
#: The runner itself failed while the builder ran (the builder was stopped).
RUNNER_ERROR = "runner_error"
#: An earlier runner already started the builder for this job and died without a marker; the
#: build is not run twice.
INTERRUPTED = "interrupted"


@dataclass
class Outcome:
    reason: str
    exit_code: int | None = None
    signal: str | None = None
    message: str | None = None

    @classmethod
    def from_returncode(cls, reason: str, returncode: int | None) -> Outcome:
        if returncode is None:
            return cls(reason)
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return cls(reason, signal=name)
        return cls(reason, exit_code=returncode)

    @property
    def succeeded(self) -> bool:
        return self.reason == EXITED and self.exit_code == 0

    def process_exit_code(self) -> int:
        """0 only for a builder that exited 0 by itself, so the ACA execution's status alone
        already tells success from failure."""
        if self.succeeded:
            return 0
        if self.reason == TIMEOUT:
            return 124
        if self.reason == TERMINATED:
            return 143
        if self.reason == START_FAILED:
            return 127
        if self.exit_code:
            return min(max(self.exit_code, 1), 255)
        if self.signal:
            try:
                return 128 + int(signal.Signals[self.signal])
            except KeyError:
                return 1
        return 1

    def fields(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "message": self.message,
        }


def exit_code_of_marker(marker: dict[str, Any]) -> int:
    outcome = Outcome(
        str(marker.get("reason") or START_FAILED),
        exit_code=marker.get("exit_code") if isinstance(marker.get("exit_code"), int) else None,
        signal=marker.get("signal") if isinstance(marker.get("signal"), str) else None,
    )
    return outcome.process_exit_code()
