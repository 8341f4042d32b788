"""Runs the driver's due work on the real clock, the dev server's stand-in for the extension's
dispatchers: timers fire on the pump thread, activities run on a pool of worker threads
(``maxConcurrentActivityFunctions`` in host.json). No thread holds the driver's lock while an
activity runs, so a start, an event or a status query waits milliseconds, not a build step.

Activities are started from long-lived pool threads on purpose: a build started by an activity
dies with the thread that forked it (``PR_SET_PDEATHSIG``), and these threads live as long as the
pump does.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from devhost.driver import Driver, Outcome, ScheduledActivity

log = logging.getLogger("devhost.pump")
#: The longest the pump sleeps without a wake-up (a safety net; wake-ups are event driven).
MAX_IDLE_SECS = 1.0


class Pump:
    def __init__(self, driver: Driver, *, workers: int = 8) -> None:
        self.driver = driver
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="activity")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="durable-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.driver.wakeup.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.driver.wakeup.clear()  # before looking, so work added meanwhile wakes us again
            try:
                self.driver.fire_due_timers()
                for instance_id, act in self.driver.take_ready():
                    self._pool.submit(self._run, instance_id, act)
            except Exception:
                log.exception("durable pump step failed")
            self.driver.wakeup.wait(self._idle_secs())

    def _idle_secs(self) -> float:
        due = self.driver.next_timer_at()
        if due is None:
            return MAX_IDLE_SECS
        wait = (due - self.driver.now()).total_seconds()
        return min(MAX_IDLE_SECS, max(0.0, wait))

    def _run(self, instance_id: str, act: ScheduledActivity) -> None:
        outcome: Outcome = self.driver.execute(act)
        try:
            self.driver.complete(instance_id, act, outcome)
        except Exception:
            log.exception("delivering %s for %s failed", act.name, instance_id)
