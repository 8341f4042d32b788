"""Requests a hostile client can send (issue 9): each is a 400 JSON envelope, never a 5xx, on the
real routes with real storage behind them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.llm_proxy import LlmProxy, ProxySettings
from tests.conftest import submission
from tests.proxy.harness import ServedProxy

STRING_FIELDS = ["app_name", "org_slug", "spec_md", "tasks_md", "owner", "idempotency_key"]


def assert_400(result: tuple, fragment: str = "") -> None:
    status, body, _ = result
    assert status == 400, body
    assert body["schema_version"] == 1 and body["error"] == "validation_error", body
    assert fragment in body["message"], body


def post_raw(api, raw: bytes):
    return api.call("POST", "/v1/jobs", raw=raw)


def with_raw_value(field: str, raw_json_value: str) -> bytes:
    """A valid body whose ``field`` is spliced in as raw JSON text (json.dumps would refuse)."""
    body = json.dumps({k: v for k, v in submission().items() if k != field})
    return (body[:-1] + f', "{field}": {raw_json_value}}}').encode()


@pytest.mark.parametrize("field", [*STRING_FIELDS, "unknown_extra"])
def test_a_lone_surrogate_in_any_string_field_is_a_400(api, field: str) -> None:
    for escape in ('"\\ud800"', '"a\\udfffb"', '"\\ud83d"'):
        assert_400(post_raw(api, with_raw_value(field, escape)), "malformed or incomplete")
    # A surrogate *pair* is a proper character and is accepted where the field allows it.
    status, body, _ = post_raw(api, with_raw_value("spec_md", '"# \\ud83d\\ude00"'))
    assert status == 202, body


def test_a_lone_surrogate_in_a_key_is_a_400(api) -> None:
    assert_400(post_raw(api, with_raw_value("x\\ud800", "1")), "surrogate")


@pytest.mark.parametrize("depth", [129, 5_000, 100_000])
def test_deeply_nested_json_is_a_400(api, depth: int) -> None:
    assert_400(post_raw(api, with_raw_value("extra", "[" * depth + "]" * depth)), "nested")
    assert_400(post_raw(api, b"[" * depth + b"]" * depth), "malformed or incomplete")
    assert_400(post_raw(api, b'{"a":' * depth + b"1" + b"}" * depth), "malformed or incomplete")


def test_nesting_the_original_accepts_is_accepted(api) -> None:
    status, body, _ = post_raw(api, with_raw_value("extra", "[" * 100 + "]" * 100))
    assert status == 202, body


@pytest.mark.parametrize("field", ["preview_ttl_hours", "extra"])
@pytest.mark.parametrize("digits", [101, 4_301, 5_000, 100_000])
def test_numbers_with_thousands_of_digits_are_a_400(api, field: str, digits: int) -> None:
    assert_400(post_raw(api, with_raw_value(field, "1" * digits)), "digits")
    assert_400(post_raw(api, with_raw_value(field, "-" + "9" * digits)), "digits")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_a_400(api, literal: str) -> None:
    assert_400(post_raw(api, with_raw_value("preview_ttl_hours", literal)), "malformed")


@pytest.mark.parametrize(
    ("value", "accepted_ttl"),
    [(2**31 - 1, 72), (-(2**31), 1), (2**31, None), (-(2**31) - 1, None), (10**30, None)],
)
def test_preview_ttl_hours_outside_the_i32_range_is_a_400(api, services, value, accepted_ttl):
    status, body, _ = api.call("POST", "/v1/jobs", body=submission(preview_ttl_hours=value))
    if accepted_ttl is None:
        assert_400((status, body, {}), "preview_ttl_hours")
    else:
        assert status == 202, body
        assert services.jobs.get_job(body["job_id"]).ttl_hours == accepted_ttl


@pytest.mark.parametrize("field", ["app_name", "org_slug"])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\n\n", " ", "\t", "\x00"])
def test_slugs_with_a_trailing_newline_or_space_are_a_400(api, field: str, suffix: str) -> None:
    assert_400(
        api.call("POST", "/v1/jobs", body=submission(**{field: "acme" + suffix})),
        f"{field} must be a non-empty [a-z0-9-] slug not bordered by '-'",
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/jobs?limit={}", "limit"),
        ("/v1/jobs/{job}/logs?tail={}", "tail"),
        ("/v1/jobs/{job}/logs?cursor={}", "cursor"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        "%C2%B2",
        "%D9%A3",
        "%EF%BC%91",
        "1" * 5000,
        "-1",
        "%2B1",
        "%201",
        "1_0",
        "0x10",
        "1e3",
        "1.0",
    ],
)
def test_integer_query_parameters_take_ascii_digits_only(api, path, name, value) -> None:
    """Superscript two, Arabic-Indic three and fullwidth one are all str.isdigit() (int() refuses
    the first); 5000 digits is past int()'s digit limit. None of them is a 500."""
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    result = api.call("GET", path.format(value, job=accepted["job_id"]))
    assert_400(result, f"{name} must be an integer")


def test_a_tampered_list_cursor_is_a_400(api) -> None:
    import base64

    for token in ({"PartitionKey": {"a": 1}}, {"x": "y"}, {"RowKey": "\x00"}, [1], "s"):
        raw = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
        assert_400(api.call("GET", f"/v1/jobs?cursor={raw}"), "cursor is malformed")
    assert_400(api.call("GET", "/v1/jobs?cursor=" + "A" * 2000), "cursor is malformed")


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%20", "%00"])
def test_a_job_id_with_a_trailing_newline_is_not_found(api, suffix: str) -> None:
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    for route in ("", "/logs", "/artifact", "/diagnostics"):
        status, body, _ = api.call("GET", f"/v1/jobs/{accepted['job_id']}{suffix}{route}")
        assert (status, body["error"]) == (404, "not_found"), body


@pytest.fixture
def proxy_token(api, services) -> Iterator[tuple[ServedProxy, str]]:
    """The LLM proxy as deployed (its own ASGI service) and a live token of an in-flight job."""
    settings = ProxySettings(upstream_url="http://127.0.0.1:9", api_key="k")
    served = ServedProxy(lambda: LlmProxy(services.tokens, services.jobs, settings))
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    token = services.tokens.mint(
        accepted["job_id"], expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    yield served, token
    served.close()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"claude-x","max_tokens":1,"messages":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"model":"claude-x","max_tokens":1,"m":' + b'{"a":' * 2_000 + b"1" + b"}" * 2_001,
        b'{"model":"claude-x","max_tokens":' + b"9" * 5_000 + b"}",
        b'{"model":"claude-\\ud800","max_tokens":1}',
    ],
    ids=["deep-arrays", "deep-objects", "huge-number", "lone-surrogate"],
)
def test_hostile_bodies_on_v1_messages_are_a_400(proxy_token, raw: bytes) -> None:
    served, token = proxy_token
    reply = httpx.post(
        f"{served.url}/v1/messages", content=raw, headers={"Authorization": f"Bearer {token}"}
    )
    status, body = reply.status_code, reply.json()
    assert (status, body["error"]) == (400, "invalid_request"), body
