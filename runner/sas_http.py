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
from email.message import Message

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
) -> tuple[int, bytes, Message]:
    """(status, body, headers) with 404 as a normal answer; retries transient faults."""
    last = "no attempt"
    for attempt in range(_ATTEMPTS):
        if attempt:
            time.sleep(0.25 * 2**attempt)
        # S310 (here and at urlopen): only the grant's SAS URLs, signed by the service for this job.
        request = urllib.request.Request(url, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                count(method)
                body = response.read() if method == "GET" else b""
                return response.status, body, response.headers
        except urllib.error.HTTPError as exc:
            count(method)
            exc.close()
            if exc.code == 404:
                return 404, b"", Message()
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
    status, _, headers = _request(url, "HEAD", timeout=timeout, count=count)
    return None if status == 404 else int(headers.get("Content-Length") or 0)


def metadata(url: str, *, timeout: float = 30.0, count: Counter = _ignore) -> dict[str, str] | None:
    """The blob's metadata (``x-ms-meta-<name>`` headers, names lowercased), or ``None`` when
    the blob does not exist."""
    status, _, headers = _request(url, "HEAD", timeout=timeout, count=count)
    if status == 404:
        return None
    prefix = "x-ms-meta-"
    return {
        name.lower().removeprefix(prefix): value
        for name, value in headers.items()
        if name.lower().startswith(prefix)
    }
