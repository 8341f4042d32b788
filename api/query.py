"""Query parameters, parsed by the models in ``api.schemas`` (the document's parameters come from
the same models).

An empty value counts as absent. Integers are ASCII decimal digits only: ``str.isdigit()`` is
true for ``"²"`` and ``int()`` refuses it, and ``int()`` of thousands of digits raises past
Python's digit limit, so both are refused here before any conversion.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from api.http import validation_error
from api.schemas import MAX_QUERY_INT

Q = TypeVar("Q", bound=BaseModel)
_DIGITS = re.compile(r"[0-9]{1,32}")


def parse_query(model: type[Q], params: Mapping[str, str]) -> Q:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        if _base_type(field) is int:
            if _DIGITS.fullmatch(raw) is None:
                raise validation_error(rule(name, field))
            values[name] = int(raw)
        else:
            values[name] = raw
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        name = str(exc.errors(include_url=False)[0]["loc"][0])
        raise validation_error(rule(name, model.model_fields[name])) from None


def rule(name: str, field: FieldInfo) -> str:
    """What a value of ``field`` must be, in words."""
    kind = _base_type(field)
    if kind is int:
        low = _bound(field, "ge")
        high = _bound(field, "le")
        if high is None or high >= MAX_QUERY_INT:
            return f"{name} must be an integer >= {low}"
        return f"{name} must be an integer {low}..{high}"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return f"{name} must be one of " + ", ".join(str(m.value) for m in kind)
    return f"{name} is malformed"


def _base_type(field: FieldInfo) -> Any:
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _bound(field: FieldInfo, constraint: str) -> int | None:
    """The field's ``ge``/``le`` constraint (pydantic keeps them as metadata objects)."""
    for item in field.metadata:
        value = getattr(item, constraint, None)
        if isinstance(value, int):
            return value
    return None
