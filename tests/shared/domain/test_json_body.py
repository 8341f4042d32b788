"""The body parser: exactly serde_json's JSON, and only MalformedJson for anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.json_body import MAX_DEPTH, MAX_INT_DIGITS, MalformedJson, load_json
from shared.errors import RequestInvalid

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(value=JSON_VALUES)
def test_valid_json_parses_exactly_as_the_json_module_does(value) -> None:
    raw = json.dumps(value).encode()
    assert load_json(raw) == json.loads(raw)
    assert load_json(raw.decode()) == json.loads(raw)


@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_parse_or_raise_malformed_json_only(raw: bytes) -> None:
    refusal: Exception | None = None
    try:
        load_json(raw)
    except MalformedJson as exc:  # anything else escapes and fails the test
        refusal = exc
    if refusal is not None:
        assert str(refusal).startswith("malformed or incomplete request body: ")
        assert isinstance(refusal, RequestInvalid) and isinstance(refusal, ValueError)


@given(
    prefix=st.lists(st.sampled_from(["[", '{"k":']), min_size=1, max_size=300),
    tail=st.sampled_from(["1", '"s"', "[]", "{}"]),
)
def test_any_nesting_parses_or_is_refused_by_depth(prefix: list[str], tail: str) -> None:
    closers = "".join("]" if p == "[" else "}" for p in reversed(prefix))
    raw = "".join(prefix) + tail + closers
    depth = len(prefix) + (1 if tail in ("[]", "{}") else 0)
    if depth <= MAX_DEPTH:
        assert load_json(raw) == json.loads(raw)
    else:
        with pytest.raises(MalformedJson, match="nested deeper"):
            load_json(raw)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 10_000, 1_000_000])
def test_hostile_nesting_is_refused(depth: int) -> None:
    with pytest.raises(MalformedJson, match="nested deeper"):
        load_json(b"[" * depth + b"]" * depth)
    with pytest.raises(MalformedJson):
        load_json(b"[" * depth)  # unterminated as well


def test_exactly_the_maximum_depth_is_accepted() -> None:
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


@pytest.mark.parametrize("digits", [MAX_INT_DIGITS + 1, 4_300, 4_301, 50_000])
def test_long_integers_are_refused(digits: int) -> None:
    with pytest.raises(MalformedJson, match="digits"):
        load_json(b"1" * digits)
    with pytest.raises(MalformedJson, match="digits"):
        load_json(b'{"a":[-' + b"7" * digits + b"]}")
    assert load_json(b"9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)


@pytest.mark.parametrize(
    "raw",
    [
        b'"\\ud800"',
        b'"x\\udc00y"',
        b'{"\\ud83d": 1}',
        b'["ok", {"deep": ["\\udfff"]}]',
        b'"\\ude00\\ud83d"',  # a pair in the wrong order is two lone halves
    ],
)
def test_lone_surrogates_anywhere_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedJson, match="surrogate"):
        load_json(raw)


def test_a_surrogate_pair_is_one_character() -> None:
    assert load_json(b'"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize(
    "raw",
    [
        b"NaN",
        b"[Infinity]",
        b'{"a":-Infinity}',
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b"",
        b"{",
        b"1 2",
    ],
)
def test_what_serde_refuses_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedJson):
        load_json(raw)


def test_utf16_is_not_sniffed() -> None:
    with pytest.raises(MalformedJson, match="UTF-8"):
        load_json('{"a": 1}'.encode("utf-16"))
