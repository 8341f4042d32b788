"""Plain HTTP reads through SAS URLs (standard library only), for what must happen before the
builder starts: importing the Azure SDK takes about a second, and the builder should not wait
for it. Everything written goes through the SDK (runner/storage.py) once the builder runs.

Errors never carry the URL (it holds a signature): only the status or the error's class.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

_ATTEMPTS = 4
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class SasHttpError(Exception):
    """Storage refused or could not be reached (the message never holds the URL)."""


#: Told the method of every request storage answered (a transaction), e.g. ``RequestCount.add``.
Counter = Callable[[str], None]


def _ignore(_method: str) -> None:
    return None


def _request(
    url: str, method: str, *, timeout: float, count: Counter
) -> tuple[int, bytes, int | None]:
    """(status, body, content length) with 404 as a normal answer; retries transient faults."""
    last = "no attempt"
    for attempt in range(_ATTEMPTS):
        if attempt:
            time.sleep(0.25 * 2**attempt)
        # S310 (here and at urlopen): only the grant's SAS URLs, signed by the service for this job.
        request = urllib.request.Request(url, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                count(method)
                length = response.headers.get("Content-Length")
                body = response.read() if method == "GET" else b""
                return response.status, body, int(length) if length is not None else None
        except urllib.error.HTTPError as exc:
            count(method)
            exc.close()
            if exc.code == 404:
                return 404, b"", None
            last = f"HTTP {exc.code}"
            if exc.code not in _RETRY_STATUSES:
                break
        except (urllib.error.URLError, OSError) as exc:
            last = type(exc).__name__
    raise SasHttpError(f"blob storage: {last}")


def get(url: str, *, timeout: float = 30.0, count: Counter = _ignore) -> bytes | None:
    """The blob's bytes, or ``None`` when it does not exist."""
    status, body, _ = _request(url, "GET", timeout=timeout, count=count)
    return None if status == 404 else body


def size(url: str, *, timeout: float = 30.0, count: Counter = _ignore) -> int | None:
    """The blob's length, or ``None`` when it does not exist."""
    status, _, length = _request(url, "HEAD", timeout=timeout, count=count)
    return None if status == 404 else (length or 0)
