"""The exit-code table covers every error the service and storage can produce."""

from __future__ import annotations

import httpx
import pytest

from admin.exits import API_ERRORS, MEANING, Exit, for_status, from_exception
from api.edge import STATUS_OF
from api.http import ErrorCode
from shared.errors import (
    ConfigurationError,
    IllegalTransition,
    NotFound,
    TerminalBackendError,
    TransientBackendError,
)


def test_every_error_code_the_api_sends_has_an_exit_code() -> None:
    """``ErrorCode`` is every ``error`` string the API may send (the document enumerates it)."""
    codes = {code.value for code in ErrorCode} | set(STATUS_OF)
    assert {"validation_error", "not_found", "misconfigured", "queue_full"} <= codes
    assert sorted(codes - set(API_ERRORS)) == []


def test_every_exit_code_is_explained() -> None:
    assert set(MEANING) == set(Exit)
    assert [int(c) for c in Exit] == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, Exit.USAGE), (401, Exit.AUTH), (403, Exit.AUTH), (404, Exit.NOT_FOUND),
     (409, Exit.CONFLICT), (413, Exit.USAGE), (429, Exit.UNAVAILABLE), (503, Exit.UNAVAILABLE)],
)  # fmt: skip
def test_bare_http_statuses(status: int, expected: Exit) -> None:
    assert for_status(status) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (NotFound("read job: not found"), Exit.NOT_FOUND),
        (IllegalTransition("ready -> canceled"), Exit.CONFLICT),
        (ConfigurationError("job storage is not configured"), Exit.AUTH),
        (TransientBackendError("read job: connection failed"), Exit.UNAVAILABLE),
        (TerminalBackendError("read job: HTTP 403 AuthorizationPermissionMismatch"), Exit.AUTH),
        (TerminalBackendError("x: authentication failed", code="auth_failed"), Exit.AUTH),
        (TerminalBackendError("read job: HTTP 400 InvalidInput"), Exit.FAILED),
        (
            httpx.ConnectError("refused", request=httpx.Request("GET", "http://h/")),
            Exit.UNAVAILABLE,
        ),
        (RuntimeError("a bug"), Exit.FAILED),
    ],
)
def test_storage_and_transport_errors(exc: Exception, expected: Exit) -> None:
    assert from_exception(exc).exit is expected


def test_messages_drop_url_queries_where_keys_ride() -> None:
    request = httpx.Request(
        "GET", "https://app/runtime/webhooks/durabletask/instances/x?code=SECRET"
    )
    error = httpx.HTTPStatusError("401", request=request, response=httpx.Response(401))
    cli_error = from_exception(error)
    assert cli_error.exit is Exit.AUTH and "SECRET" not in cli_error.message
