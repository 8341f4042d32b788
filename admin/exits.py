"""The CLI's exit codes, in one table, and the one place failures are sorted into them.

Invariant: every failure the CLI reports leaves through :class:`CliError` with one of these
codes; scripts can rely on the numbers (they are printed by ``--help``).
"""

from __future__ import annotations

import enum

import httpx
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from shared.errors import (
    ConfigurationError,
    IllegalTransition,
    NotFound,
    TerminalBackendError,
    TransientBackendError,
)


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    UNAVAILABLE = 5
    CONFLICT = 6


MEANING: dict[Exit, str] = {
    Exit.OK: "done",
    Exit.FAILED: "the job you followed ended failed, canceled or expired; or an unexpected error",
    Exit.USAGE: "bad arguments, or the service refused the request as invalid",
    Exit.NOT_FOUND: "no such job (or function)",
    Exit.AUTH: "a key is missing or refused, or a setting is missing (misconfigured)",
    Exit.UNAVAILABLE: "the app or storage is unreachable, failing (5xx) or busy (queue full)",
    Exit.CONFLICT: "the job's state forbids it (already ended, no preview), or a name/key clash",
}


class CliError(Exception):
    """A failure to report on stderr: ``code`` is a stable short word, ``exit`` the status."""

    def __init__(self, exit_code: Exit, code: str, message: str) -> None:
        super().__init__(message)
        self.exit = exit_code
        self.code = code
        self.message = message


#: The service's stable ``error`` codes (the API's JSON envelope) -> exit code.
API_ERRORS: dict[str, Exit] = {
    "validation_error": Exit.USAGE,
    "payload_too_large": Exit.USAGE,
    "uri_too_long": Exit.USAGE,
    "method_not_allowed": Exit.USAGE,
    "unauthorized": Exit.AUTH,
    "forbidden": Exit.AUTH,
    "misconfigured": Exit.AUTH,
    "not_found": Exit.NOT_FOUND,
    "idempotency_conflict": Exit.CONFLICT,
    "idempotency_in_progress": Exit.CONFLICT,
    "app_name_conflict": Exit.CONFLICT,
    "queue_full": Exit.UNAVAILABLE,
    "unavailable": Exit.UNAVAILABLE,
    "internal_error": Exit.UNAVAILABLE,
}


def for_status(status: int) -> Exit:
    """An HTTP status with no (known) ``error`` code in its body."""
    if status in (401, 403):
        return Exit.AUTH
    if status == 404:
        return Exit.NOT_FOUND
    if status == 409:
        return Exit.CONFLICT
    if status == 429 or status >= 500:
        return Exit.UNAVAILABLE
    return Exit.USAGE


def from_exception(exc: BaseException) -> CliError:
    """Sort an exception raised by the storage or HTTP clients into the table.

    Messages name the operation and never a URL's query (keys ride in ``?code=``)."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, NotFound):
        return CliError(Exit.NOT_FOUND, "not_found", str(exc))
    if isinstance(exc, IllegalTransition):
        return CliError(Exit.CONFLICT, "conflict", str(exc))
    if isinstance(exc, ConfigurationError):
        return CliError(Exit.AUTH, "misconfigured", str(exc))
    if isinstance(exc, TerminalBackendError):
        refused = exc.code == "auth_failed" or any(f"HTTP {s}" in str(exc) for s in (401, 403))
        return CliError(Exit.AUTH if refused else Exit.FAILED, exc.code or "failed", str(exc))
    if isinstance(exc, ClientAuthenticationError):
        return CliError(Exit.AUTH, "unauthorized", "storage refused the credential")
    if isinstance(exc, TransientBackendError | ServiceRequestError):
        return CliError(Exit.UNAVAILABLE, "unavailable", f"storage unavailable: {exc}")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        where = f"{exc.request.method} {exc.request.url.copy_with(query=None)}"
        return CliError(for_status(status), f"http_{status}", f"{where}: HTTP {status}")
    if isinstance(exc, httpx.TransportError):
        where = str(exc.request.url.copy_with(query=None)) if _has_request(exc) else "the app"
        return CliError(Exit.UNAVAILABLE, "unavailable", f"cannot reach {where}: {exc!r}")
    return CliError(Exit.FAILED, "failed", f"{type(exc).__name__}: {exc}")


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when no request is attached
    except RuntimeError:
        return False
    return True
