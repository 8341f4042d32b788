"""The service's typed errors, and the one place azure-core exceptions are translated."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)


class FoundryError(Exception):
    """Root of every error the service raises on purpose."""


class NotFound(FoundryError):
    """The thing asked for does not exist."""


class AlreadyExists(FoundryError):
    """A conditional insert lost: the row or resource is there already."""


class ConcurrencyConflict(FoundryError):
    """An ETag-conditional write lost a race; read again and retry."""


class IllegalTransition(FoundryError):
    """A status change the contract's state machine does not allow."""


class TransientBackendError(FoundryError):
    """Worth retrying: throttling, 5xx, timeouts, connection drops."""


class TerminalBackendError(FoundryError):
    """Retrying will not help: bad request, forbidden, quota, policy."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConfigurationError(FoundryError):
    """Required configuration is missing or malformed; the message names the variables."""


class Refused(FoundryError):
    """The domain refuses a request; ``str(exc)`` is safe to show the caller.

    ``code`` is the contract's stable ``error`` string; the API edge alone maps it to an HTTP
    status (``api.edge.STATUS_OF``), so nothing below the edge knows about HTTP."""

    code = "validation_error"
    #: Seconds a caller should wait before trying again, when waiting helps.
    retry_after: int | None = None


class RequestInvalid(Refused, ValueError):
    """The request is malformed or breaks a contract rule."""


class PayloadTooLarge(RequestInvalid):
    code = "payload_too_large"


class QueueFull(Refused):
    code = "queue_full"
    retry_after = 60


class AppNameConflict(Refused):
    code = "app_name_conflict"


class IdempotencyConflict(Refused):
    code = "idempotency_conflict"


class IdempotencyInProgress(Refused):
    code = "idempotency_in_progress"
    retry_after = 1


_TRANSIENT_STATUS = frozenset({408, 409, 423, 429, 500, 502, 503, 504})


@contextlib.contextmanager
def translate_azure_errors(what: str) -> Iterator[None]:
    """Map azure-core exceptions raised inside the block to :class:`FoundryError` subclasses.

    Messages name the operation, never a URL (SAS URLs carry signatures).
    """
    try:
        yield
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except ResourceModifiedError as exc:
        raise ConcurrencyConflict(f"{what}: changed concurrently") from exc
    except ResourceExistsError as exc:
        raise AlreadyExists(f"{what}: already exists") from exc
    except ClientAuthenticationError as exc:
        raise TerminalBackendError(f"{what}: authentication failed", code="auth_failed") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientBackendError(f"{what}: connection failed") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        code = getattr(exc, "error_code", None) or (exc.error.code if exc.error else None)
        if status in _TRANSIENT_STATUS:
            raise TransientBackendError(f"{what}: HTTP {status} {code or ''}".strip()) from exc
        raise TerminalBackendError(
            f"{what}: HTTP {status} {code or ''}".strip(), code=code
        ) from exc
