"""JSON responses and the contract's error envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func

SCHEMA_VERSION = 1
JSON = "application/json"


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
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    """``{"schema_version":1,"error":"<code>","message":"..."}``: codes are stable, messages are
    for people."""
    return json_response(
        status,
        {"schema_version": SCHEMA_VERSION, "error": code, "message": message},
        headers=headers,
    )


class ApiError(Exception):
    """Raised inside handlers; turned into the error envelope at the edge."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def response(self) -> func.HttpResponse:
        return error_response(self.status, self.code, self.message, headers=self.headers)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "missing or invalid bearer token",
        {"WWW-Authenticate": 'Bearer realm="foundry"'},
    )


def not_found(message: str = "job not found") -> ApiError:
    return ApiError(404, "not_found", message)


def validation_error(message: str) -> ApiError:
    return ApiError(400, "validation_error", message)
