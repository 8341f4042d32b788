"""Removes the job's secrets from bytes before they leave the build container.

Two layers: the exact secret values the runner knows (the proxy token, every SAS signature of the
grant, raw and URL-decoded), and patterns for secret-shaped text it does not know (proxy-token
shaped strings, ``sig=`` query values, bearer credentials, Anthropic keys). Scrubbing works on
bytes, so undecodable output is scrubbed too.

Invariant for callers that cut a stream into pieces: a secret or pattern match never contains a
byte of :data:`SEPARATORS`, so a cut made right after a separator byte (see :func:`safe_cut`)
never splits one, and scrubbing the pieces one by one equals scrubbing the whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = b"[redacted]"
#: Shorter "secrets" are ignored: they would redact ordinary text (and a real one is never short).
MIN_SECRET_BYTES = 8
#: Bytes that never occur inside a secret value or a pattern match below (so no space: the
#: bearer pattern spans one).
SEPARATORS = frozenset(b"\n\r,;\"'<>&")
#: How far back :func:`safe_cut` looks for a separator before it gives up and cuts anyway.
CUT_WINDOW = 4096

_PATTERNS: tuple[re.Pattern[bytes], ...] = (
    re.compile(rb"\bfb_[0-9A-Za-z]{10,}"),  # the service's proxy tokens are fb_<ULID>
    re.compile(rb"(?i)(?<![a-z])(sig(?:=|%3D))[^&\s\"'<>,;]{16,}"),  # SAS signatures, also encoded
    re.compile(rb"(?i)(\bbearer[ \t]+)[^\s\"'<>,;&]{8,}"),
    re.compile(rb"\bsk-ant-[0-9A-Za-z_-]{8,}"),
)


class Scrubber:
    """Replaces known secrets and secret-shaped text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted(
            {s.encode() for s in secrets if len(s.encode()) >= MIN_SECRET_BYTES},
            key=len,
            reverse=True,  # longest first, so a secret containing another is removed whole
        )
        self._literal = re.compile(b"|".join(re.escape(v) for v in values)) if values else None

    @property
    def knows_secrets(self) -> bool:
        return self._literal is not None

    def scrub_literals(self, data: bytes) -> bytes:
        """Only the exact known values: safe for source files, where patterns could break code."""
        return self._literal.sub(REDACTED, data) if self._literal is not None else data

    def scrub(self, data: bytes) -> bytes:
        """Known values and secret-shaped text: for logs and diagnostics."""
        data = self.scrub_literals(data)
        for pattern in _PATTERNS:
            if pattern.groups:
                data = pattern.sub(lambda m: m.group(1) + REDACTED, data)
            else:
                data = pattern.sub(REDACTED, data)
        return data

    def scrub_text(self, text: str) -> str:
        return self.scrub(text.encode("utf-8", errors="surrogateescape")).decode(
            "utf-8", errors="replace"
        )

    def scrub_values(self, value: Any) -> Any:
        """Every string inside ``value`` (dicts, lists, scalars) scrubbed, keys included. For data
        that is then encoded as JSON: scrubbing the encoded text instead could swallow an escape
        (``sig=…\\"``) and break the document."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub_values(k): self.scrub_values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_values(v) for v in value]
        return value


def safe_cut(data: bytes, limit: int) -> int:
    """Where to cut ``data`` so the first piece is at most ``limit`` bytes without splitting a
    secret: right after the last separator in the ``CUT_WINDOW`` bytes before the cut limit.

    Without such a separator: when ``data`` is longer than ``limit`` the piece must be cut
    anyway, at ``limit`` (a run of over ``CUT_WINDOW`` non-separator bytes is no secret we know
    of); when it is not, the last ``CUT_WINDOW`` bytes are held back (0 means "wait for more")."""
    end = min(limit, len(data))
    start = max(0, end - CUT_WINDOW)
    for index in range(end - 1, start - 1, -1):
        if data[index] in SEPARATORS:
            return index + 1
    return end if len(data) > limit else start
