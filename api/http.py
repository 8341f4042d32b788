"""JSON responses and the contract's error envelope, with the one list of its ``error`` codes."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func

SCHEMA_VERSION = 1
JSON = "application/json"


class ErrorCode(enum.StrEnum):
    """Every ``error`` string the API sends. The envelope takes nothing else (mypy holds every
    call site to this type), and ``/v1/openapi.json`` enumerates exactly these."""

    VALIDATION_ERROR = "validation_error"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    APP_NAME_CONFLICT = "app_name_conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    URI_TOO_LONG = "uri_too_long"
    QUEUE_FULL = "queue_full"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    MISCONFIGURED = "misconfigured"


#: The status each code is sent with, and what it means (the API document's table).
ERROR_CODES: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.VALIDATION_ERROR: (
        400,
        "The body, a query parameter or the job's state does not allow the request.",
    ),
    ErrorCode.UNAUTHORIZED: (401, "Missing or invalid bearer token."),
    ErrorCode.FORBIDDEN: (403, "The key lacks the scope, or the owner/org right."),
    ErrorCode.NOT_FOUND: (404, "Unknown job, artifact or route."),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "The route exists; `Allow` lists its methods."),
    ErrorCode.IDEMPOTENCY_CONFLICT: (409, "idempotency_key reused with a different request."),
    ErrorCode.IDEMPOTENCY_IN_PROGRESS: (
        409,
        "A request with this idempotency_key is still being accepted; retry after Retry-After.",
    ),
    ErrorCode.APP_NAME_CONFLICT: (
        409,
        "app_name (within org_slug) is held by an in-flight or live build.",
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "The request body is larger than the route accepts."),
    ErrorCode.URI_TOO_LONG: (414, "The URL (path and query) is longer than 8000 bytes."),
    ErrorCode.QUEUE_FULL: (429, "The build queue is full; retry after Retry-After."),
    ErrorCode.INTERNAL_ERROR: (500, "A fault in the service (a bug: please report it)."),
    ErrorCode.UNAVAILABLE: (503, "Storage is temporarily unavailable; retry after Retry-After."),
    ErrorCode.MISCONFIGURED: (503, "The service's configuration is missing or invalid."),
}


def json_response(
    status: int, body: Any, *, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        mimetype=JSON,
        headers=dict(headers or {}),
    )


def error_response(
    status: int, code: ErrorCode, message: str, *, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    """``{"schema_version":1,"error":"<code>","message":"..."}``: codes are stable, messages are
    for people."""
    return json_response(
        status,
        {"schema_version": SCHEMA_VERSION, "error": code.value, "message": message},
        headers=headers,
    )


class ApiError(Exception):
    """Raised inside handlers; turned into the error envelope at the edge."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def response(self) -> func.HttpResponse:
        return error_response(self.status, self.code, self.message, headers=self.headers)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        ErrorCode.UNAUTHORIZED,
        "missing or invalid bearer token",
        {"WWW-Authenticate": 'Bearer realm="foundry"'},
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, ErrorCode.FORBIDDEN, message)


def not_found(message: str = "job not found") -> ApiError:
    return ApiError(404, ErrorCode.NOT_FOUND, message)


def validation_error(message: str) -> ApiError:
    return ApiError(400, ErrorCode.VALIDATION_ERROR, message)
