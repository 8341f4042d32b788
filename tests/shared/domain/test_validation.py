from __future__ import annotations

import json

import pytest

from shared.config.settings import Settings
from shared.domain.validation import RequestInvalid, parse_submit, request_hash

SETTINGS = Settings(storage_connection_string="UseDevelopmentStorage=true", max_input_bytes=1024)
GOOD = {
    "app_name": "my-app",
    "spec_md": "# s",
    "tasks_md": "- [ ] T1: x",
    "owner": "o",
    "idempotency_key": "k",
}


def parse(body: object) -> object:
    return parse_submit(json.dumps(body).encode(), SETTINGS)


def test_accepts_a_minimal_body() -> None:
    req = parse(GOOD)
    assert req.app_name == "my-app" and req.org_slug is None and req.preview_ttl_hours is None


@pytest.mark.parametrize("name", ["a", "a-b", "a--b", "0", "x" * 63])
def test_valid_slugs(name: str) -> None:
    assert parse({**GOOD, "app_name": name, "org_slug": name})


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "a.b", "x" * 64, "é"])
def test_invalid_app_names_are_refused_with_the_contract_message(name: str) -> None:
    with pytest.raises(RequestInvalid, match="app_name must be a non-empty"):
        parse({**GOOD, "app_name": name})


def test_empty_org_slug_is_refused() -> None:
    with pytest.raises(RequestInvalid, match="org_slug must be a non-empty"):
        parse({**GOOD, "org_slug": ""})


@pytest.mark.parametrize("field", ["app_name", "spec_md", "tasks_md", "owner", "idempotency_key"])
def test_required_fields(field: str) -> None:
    body = dict(GOOD)
    del body[field]
    with pytest.raises(RequestInvalid, match=f"missing required field '{field}'"):
        parse(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("app_name", 3),
        ("spec_md", None),
        ("preview_ttl_hours", "24"),
        ("preview_ttl_hours", True),
        ("owner", ["o"]),
    ],
)
def test_wrong_types(field: str, value: object) -> None:
    with pytest.raises(RequestInvalid, match=f"field '{field}' has the wrong type"):
        parse({**GOOD, field: value})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(RequestInvalid, match="unknown field 'colour'"):
        parse({**GOOD, "colour": "red"})


def test_markdown_limit_is_in_utf8_bytes() -> None:
    assert parse({**GOOD, "spec_md": "x" * 1024})
    with pytest.raises(RequestInvalid, match="spec_md exceeds the maximum input size of 1024"):
        parse({**GOOD, "spec_md": "é" * 513})  # 1026 bytes, 513 characters


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b"\xff\xfe", b'"x"'])
def test_bad_json(raw: bytes) -> None:
    with pytest.raises(RequestInvalid):
        parse_submit(raw, SETTINGS)


def test_oversize_body_is_refused_before_parsing() -> None:
    with pytest.raises(RequestInvalid, match="too large"):
        parse_submit(b" " * (5 * 1024 + 64 * 1024), SETTINGS)


@pytest.mark.parametrize(
    ("requested", "expected"), [(None, 24), (0, 1), (-5, 1), (1, 1), (72, 72), (500, 72), (12, 12)]
)
def test_ttl_is_clamped(requested: int | None, expected: int) -> None:
    assert SETTINGS.clamp_ttl(requested) == expected


def test_request_hash_ignores_owner_and_key_but_not_content_or_ttl() -> None:
    a = parse(GOOD)
    assert request_hash(a, 24) == request_hash(
        parse({**GOOD, "owner": "x", "idempotency_key": "y"}), 24
    )
    assert request_hash(a, 24) != request_hash(a, 25)
    assert request_hash(a, 24) != request_hash(parse({**GOOD, "org_slug": "acme"}), 24)
    # Field boundaries are delimited, so moving text between fields changes the hash.
    b = parse({**GOOD, "spec_md": "# s- [ ] T1: x", "tasks_md": "z"})
    assert request_hash(a, 24) != request_hash(b, 24)
