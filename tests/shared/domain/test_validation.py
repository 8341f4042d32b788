from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.config.settings import Settings
from shared.domain.validation import (
    RequestInvalid,
    SubmitRequest,
    is_slug,
    parse_submit,
    request_hash,
)

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


def test_unknown_fields_are_ignored_as_serde_ignores_them() -> None:
    req = parse({**GOOD, "colour": "red", "nested": {"deep": [1, 2, {"x": None}]}})
    assert req.model_dump() == parse(GOOD).model_dump()
    assert not hasattr(req, "colour")


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


# -- hostile input and the original's wording (issue 9) ----------------------------------------

SLUGGY = st.text(alphabet="abz09-_A\n\r \t.é", max_size=70) | st.text(max_size=70)


@given(value=SLUGGY)
def test_the_models_slug_pattern_and_is_slug_agree(value: str) -> None:
    """pydantic's (Rust) regex, Python's fullmatch: one rule, no trailing-newline gap."""
    try:
        SubmitRequest.model_validate({**GOOD, "app_name": value})
        by_model = True
    except ValidationError:
        by_model = False
    assert by_model == is_slug(value)
    if value.endswith("\n"):
        assert not is_slug(value)


@pytest.mark.parametrize("name", ["acme\n", "acme\r\n", "\nacme", "ac\nme", "acme ", "acme\x00"])
@pytest.mark.parametrize("field", ["app_name", "org_slug"])
def test_newlines_never_pass_as_slugs(field: str, name: str) -> None:
    with pytest.raises(RequestInvalid, match=f"{field} must be a non-empty"):
        parse({**GOOD, field: name})


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    changes=st.dictionaries(
        st.sampled_from([*GOOD, "org_slug", "preview_ttl_hours", "other"]), JSONISH, max_size=4
    ),
    dropped=st.sets(st.sampled_from(list(GOOD)), max_size=2),
)
def test_any_body_is_accepted_or_refused_with_a_request_invalid(changes, dropped) -> None:
    body = {k: v for k, v in {**GOOD, **changes}.items() if k not in dropped}
    try:
        req = parse(body)
    except RequestInvalid as exc:
        refusal = str(exc)
    else:
        refusal = ""
    if refusal:
        return
    assert req.app_name == body["app_name"] and is_slug(req.app_name)
    assert req.owner == body["owner"] and req.spec_md == body["spec_md"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [  # the original's messages, in its order of checks (models.rs::validate_submit)
        ({"app_name": "-x", "spec_md": ""}, "app_name must be a non-empty [a-z0-9-] slug"),
        ({"spec_md": "", "tasks_md": ""}, "spec_md must not be empty"),
        ({"spec_md": "x" * 1025, "tasks_md": ""}, "spec_md exceeds the maximum input size"),
        ({"tasks_md": "", "owner": ""}, "tasks_md must not be empty"),
        ({"tasks_md": "x" * 1025, "owner": ""}, "tasks_md exceeds the maximum input size"),
        ({"owner": "", "idempotency_key": ""}, "owner must not be empty"),
        ({"idempotency_key": "", "org_slug": "-"}, "idempotency_key must not be empty"),
        ({"org_slug": ""}, "org_slug must be a non-empty [a-z0-9-] slug"),
        ({"app_name": "-x", "owner": 5}, "malformed or incomplete request body"),
        ({"preview_ttl_hours": 2**31}, "malformed or incomplete request body"),
    ],
)
def test_messages_and_their_order_are_the_originals(changes: dict, message: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse({**GOOD, **changes})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("ttl", [2**31 - 1, -(2**31)])
def test_the_whole_i32_range_of_preview_ttl_hours_is_accepted(ttl: int) -> None:
    assert parse({**GOOD, "preview_ttl_hours": ttl}).preview_ttl_hours == ttl


@pytest.mark.parametrize(
    "raw",
    [
        b'{"app_name": "\\ud800"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"preview_ttl_hours": ' + b"1" * 5_000 + b"}",
        b'{"preview_ttl_hours": NaN}',
    ],
)
def test_hostile_json_is_a_request_invalid(raw: bytes) -> None:
    with pytest.raises(RequestInvalid, match="malformed or incomplete request body"):
        parse_submit(raw, SETTINGS)
