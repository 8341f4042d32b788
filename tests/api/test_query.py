"""Property tests over every query parameter of every route: whatever text arrives, parsing
returns the model or a 400 envelope, and integers are exactly the ASCII-decimal ones in range."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from api.http import ApiError, ErrorCode
from api.query import parse_query
from api.schemas import MAX_QUERY_INT, ListJobsQuery, LogsQuery
from shared.domain.models import JobStatus

PARAMETERS = [(model, name) for model in (ListJobsQuery, LogsQuery) for name in model.model_fields]
INT_PARAMETERS = [
    (m, n) for m, n in PARAMETERS if m.model_fields[n].annotation in (int, int | None)
]
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Zs", "Cc"]), max_size=12),
    st.text(alphabet=string.digits + "+-_ .eEx", max_size=30),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
)


def parse_or_refusal(model: type[BaseModel], params: dict[str, str]) -> BaseModel | ApiError:
    try:
        return parse_query(model, params)
    except ApiError as exc:  # anything else escapes and fails the test
        refusal = exc
    assert (refusal.status, refusal.code) == (400, ErrorCode.VALIDATION_ERROR)
    assert refusal.message
    return refusal


def test_the_property_tests_cover_every_query_parameter() -> None:
    assert {n for _, n in PARAMETERS} == {"status", "owner", "limit", "cursor", "stage", "tail"}
    assert {(m.__name__, n) for m, n in INT_PARAMETERS} == {
        ("ListJobsQuery", "limit"),
        ("LogsQuery", "tail"),
        ("LogsQuery", "cursor"),
    }


@pytest.mark.parametrize(("model", "name"), PARAMETERS, ids=lambda v: getattr(v, "__name__", v))
@given(value=HOSTILE_TEXT)
def test_any_text_in_any_parameter_is_a_value_or_a_400(model, name, value: str) -> None:
    result = parse_or_refusal(model, {name: value})
    if isinstance(result, BaseModel) and value:
        parsed = getattr(result, name)
        if isinstance(parsed, int):
            assert str(parsed) == value.lstrip("0") or (parsed == 0 and set(value) == {"0"})


@pytest.mark.parametrize(("model", "name"), INT_PARAMETERS, ids=lambda v: getattr(v, "__name__", v))
@given(data=st.data())
def test_integers_are_exactly_ascii_digits_in_range(model, name, data) -> None:
    field = model.model_fields[name]
    low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    high = next(m.le for m in field.metadata if hasattr(m, "le"))
    number = data.draw(st.integers(min_value=low - 5, max_value=high + 5) | st.integers(low, 200))
    result = parse_or_refusal(model, {name: str(number)})
    if low <= number <= high:
        assert getattr(result, name) == number
    else:
        assert isinstance(result, ApiError)
    # The same number in any non-ASCII digits (str.isdigit() is true for all of them) is refused.
    digit = data.draw(st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii()))
    assert isinstance(parse_or_refusal(model, {name: str(abs(number)) + digit}), ApiError)


@pytest.mark.parametrize(("model", "name"), INT_PARAMETERS, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0663", "\uff11", "1" * 5000, "9" * 33, str(MAX_QUERY_INT + 1)]
)
def test_the_issue_cases_are_400s(model, name, value: str) -> None:
    refusal = parse_or_refusal(model, {name: value})
    assert isinstance(refusal, ApiError)
    assert refusal.message.startswith(f"{name} must be an integer")


def test_empty_values_are_absent_and_defaults_hold() -> None:
    listing = parse_query(ListJobsQuery, {"limit": "", "status": "", "cursor": ""})
    assert (listing.limit, listing.status, listing.cursor) == (100, None, None)
    assert parse_query(ListJobsQuery, {"status": "ready"}).status is JobStatus.READY
    assert parse_query(LogsQuery, {"tail": "0007"}).tail == 7
    with pytest.raises(ApiError, match="status must be one of queued, building"):
        parse_query(ListJobsQuery, {"status": "bogus"})
    with pytest.raises(ApiError, match=r"limit must be an integer 1\.\.100"):
        parse_query(ListJobsQuery, {"limit": "101"})
