"""Follows one growing local file (the builder's stdout or stderr) into one append blob.

The file is the buffer: ``position`` only moves past bytes once they are committed to the blob,
so a storage outage delays the log but loses nothing, and the builder never blocks on the
runner. Pieces are sent when ``flush_bytes`` are waiting or the oldest waiting byte is
``flush_interval`` old; they end at a line break where possible, are scrubbed, and stay below the
append-block limit after scrubbing. When the blob's block budget runs low, flushes get rarer,
keeping a reserve of blocks for the final flush.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from azure.core.exceptions import AzureError

from runner.append_log import AppendLog, LogFull, LogUnwritable
from runner.scrub import Scrubber, safe_cut

log = logging.getLogger(__name__)
#: Raw bytes per piece: scrubbing grows text by at most 1.25x, so the piece stays under 4 MiB.
MAX_RAW_PIECE = 3 * 1024 * 1024
#: A line still unfinished after this long is sent up to its last separator.
STALE_PARTIAL_SECS = 2.0
#: Slow-down once this share of the block budget is used.
SLOW_SHARE = 0.8
SLOW_INTERVAL_SECS = 10.0
MAX_BACKOFF_SECS = 5.0


class LogFollower:
    def __init__(
        self,
        path: Path,
        blob: AppendLog | None,
        scrubber: Scrubber,
        *,
        flush_interval: float,
        flush_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.blob = blob
        self.scrubber = scrubber
        self.flush_interval = flush_interval
        self.flush_bytes = flush_bytes
        self.clock = clock
        self.position = 0
        self.waiting_since: float | None = None
        self.retry_at = 0.0
        self.failures = 0
        self.dropped_bytes = 0
        self.last_error: str | None = None
        self.unwritable = False

    @property
    def uploaded_bytes(self) -> int:
        return self.position - self.dropped_bytes

    @property
    def pending_bytes(self) -> int:
        """Bytes in the file not yet committed to the blob (nor given up on)."""
        return max(0, self._size() - self.position)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _interval(self) -> float:
        assert self.blob is not None
        if self.blob.blocks >= self.blob.max_blocks * SLOW_SHARE:
            return max(self.flush_interval, SLOW_INTERVAL_SECS)
        return self.flush_interval

    def _reserve(self) -> int:
        assert self.blob is not None
        return max(1, self.blob.max_blocks // 500)

    def _due(self, waiting: int, now: float) -> bool:
        assert self.blob is not None
        assert self.waiting_since is not None
        if now < self.retry_at:
            return False
        if self.blob.blocks_left <= self._reserve():
            return False  # the last blocks are kept for the final flush
        return waiting >= self.flush_bytes or now - self.waiting_since >= self._interval()

    def pump(self, *, final: bool = False) -> None:
        """Send what is due (everything when ``final``). Never raises for storage faults: they
        are retried on a later call, with backoff."""
        size = self._size()
        waiting = size - self.position
        if waiting <= 0:
            self.waiting_since = None
            return
        now = self.clock()
        if self.waiting_since is None:
            self.waiting_since = now
        if self.blob is None or self.blob.full or self.unwritable:
            self.dropped_bytes += waiting
            self.position = size
            return
        if not final and not self._due(waiting, now):
            return
        before = self.position
        with self.path.open("rb") as source:
            while self.position < size:
                source.seek(self.position)
                raw = source.read(min(size - self.position, MAX_RAW_PIECE))
                piece_end = self._piece_end(
                    raw, at_eof=self.position + len(raw) >= size, final=final, now=now
                )
                if piece_end == 0:
                    break
                if not self._send(
                    raw[:piece_end], at_eof=final and self.position + piece_end >= size
                ):
                    break
                self.position += piece_end
        if self.position >= size:
            self.waiting_since = None
        elif self.position > before:
            self.waiting_since = now  # what is left (a partial line) waits from now on

    def _piece_end(self, raw: bytes, *, at_eof: bool, final: bool, now: float) -> int:
        """How many bytes of ``raw`` form the next piece (0 = wait for more)."""
        line_end = raw.rfind(b"\n") + 1
        if line_end:
            return line_end
        if final and at_eof:
            return len(raw)
        assert self.waiting_since is not None
        if len(raw) >= MAX_RAW_PIECE or now - self.waiting_since >= STALE_PARTIAL_SECS:
            return safe_cut(raw, len(raw) if len(raw) < MAX_RAW_PIECE else MAX_RAW_PIECE - 1)
        return 0

    def _send(self, raw: bytes, *, at_eof: bool) -> bool:
        assert self.blob is not None
        data = self.scrubber.scrub(raw)
        if at_eof and not data.endswith(b"\n"):
            data += b"\n"  # readers take whole lines only: close the builder's last one
        if len(data) > self.blob.max_block_bytes:
            raise AssertionError("a scrubbed piece outgrew the append-block limit")
        try:
            if not self.blob.opened:
                self.blob.open()  # first contact with storage happens here, retried like appends
            self.blob.append(data)
        except LogUnwritable as exc:
            self.last_error = "full" if isinstance(exc, LogFull) else "refused"
            log.warning(
                "%s: the log blob is %s; the rest stays in diagnostics",
                self.path.name,
                self.last_error,
            )
            self.unwritable = True
            self.dropped_bytes += self._size() - self.position
            self.position = self._size()
            return False
        except (AzureError, RuntimeError) as exc:
            self.failures += 1
            self.last_error = type(exc).__name__
            backoff = min(MAX_BACKOFF_SECS, 0.25 * 2 ** min(self.failures, 5))
            self.retry_at = self.clock() + backoff
            log.warning(
                "%s: append failed (%s); retrying in %.1fs",
                self.path.name,
                self.last_error,
                backoff,
            )
            return False
        self.failures = 0
        return True
