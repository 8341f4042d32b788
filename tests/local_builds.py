"""Keeping the driver's virtual clock from racing real local builds.

A local build is a real process tree (the build runner and its builder); the durable driver
jumps its virtual clock from timer to timer. Used as ``between_timers``, :func:`settle` holds
each jump until the job's running builds have ended, so a build is judged by how it ended, not
by a deadline that virtual time reached while the runner was still uploading."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.backends.base import StepState
from shared.services import Services


def settle(services: Services, job_id: str, *, timeout: float = 60.0) -> Callable[[], None]:
    def wait() -> None:
        deadline = time.monotonic() + timeout
        while services.backend.poll_build(job_id).state is StepState.RUNNING:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)

    return wait
