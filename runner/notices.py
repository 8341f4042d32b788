"""The runner's notices to the service: ``POST {"event": "progress"|"finished"}`` to
``FOUNDRY_BUILD_EVENTS_URL`` (the service's ``/v1/jobs/<id>/build-events``) with the job's proxy
token as bearer. They are hints: the service re-checks the build itself and its maintenance
timer covers a lost notice, so a notice that fails costs time, never correctness.

``progress`` (the stream grew) is sent from a background thread, at most one per
``min_interval`` and never blocking the log follower; ``finished`` is sent after the result
marker, in the foreground, with a few retries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)
_TIMEOUT_SECS = 5.0
_FINISHED_ATTEMPTS = 3


class Notifier:
    def __init__(self, url: str | None, token: str | None, *, min_interval: float = 2.0) -> None:
        self.url = url if url and token else None
        self.token = token
        self.min_interval = min_interval
        #: Set once the service refused a notice for good (4xx): no further ones are sent.
        self.refused = False
        self.sent: list[str] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None and not self.refused

    def _post(self, event: str) -> int | None:
        """The HTTP status, or ``None`` when the service could not be reached."""
        assert self.url is not None
        # S310 (here and at urlopen): the URL is FOUNDRY_BUILD_EVENTS_URL, set by the service.
        request = urllib.request.Request(  # noqa: S310
            self.url,
            data=json.dumps({"event": event}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_SECS) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            status = exc.code
        except (urllib.error.URLError, OSError):
            return None
        if 400 <= status < 500 and status not in (408, 429):
            self.refused = True
        if status < 300:
            self.sent.append(event)
        return status

    def progress(self) -> None:
        """The stream grew: tell the service soon (coalesced, never blocks)."""
        if not self.enabled:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._progress_loop, daemon=True)
            self._thread.start()
        self._wake.set()

    def _progress_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set() or not self.enabled:
                return
            self._post("progress")
            self._stop.wait(self.min_interval)

    def finished(self) -> bool:
        """The build is over and everything is uploaded: tell the service now."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=_TIMEOUT_SECS + 1)
        if not self.enabled:
            return False
        for attempt in range(_FINISHED_ATTEMPTS):
            if attempt:
                time.sleep(0.5 * attempt)
            status = self._post("finished")
            if status is not None and status < 300:
                return True
            if self.refused:
                break
        log.warning("the service did not take the finished notice (%s)", status or "unreachable")
        return False
