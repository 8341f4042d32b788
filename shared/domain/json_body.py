"""Parsing a client's JSON body without letting hostile input escape as anything but a refusal.

:func:`load_json` accepts exactly what the original service's ``serde_json`` accepts and raises
:class:`MalformedJson` (a :class:`~shared.errors.RequestInvalid`, so also a ``ValueError``) for
everything else. Python's ``json`` module is more permissive, and some of its failure modes are not
``JSONDecodeError``:

* bytes that are not UTF-8 (``json.loads`` would sniff UTF-16/32);
* ``NaN``/``Infinity`` (not JSON);
* integers longer than :data:`MAX_INT_DIGITS` (``int()`` raises a plain ``ValueError`` past 4300
  digits, and nothing a client means is that long);
* nesting deeper than :data:`MAX_DEPTH` (``serde_json``'s recursion limit; Python's parser raises
  ``RecursionError`` somewhere near 1000 levels);
* lone UTF-16 surrogate escapes such as ``"\\ud800"`` in any key or string (they decode to ``str``
  values that cannot be encoded back to UTF-8, so they would fail later, far from the parser).
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.errors import RequestInvalid

#: ``serde_json``'s default recursion limit, which the original service inherits.
MAX_DEPTH = 128
#: Longer integer literals are refused (a u64 has 20 digits).
MAX_INT_DIGITS = 100
MALFORMED = "malformed or incomplete request body"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJson(RequestInvalid):
    """The body is not a JSON document the service accepts. ``str(exc)`` starts with the original
    service's wording, ``malformed or incomplete request body``."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{MALFORMED}: {detail}")


class _NumberTooLong(Exception):
    """Raised from inside the parser's hooks; turned into :class:`MalformedJson` below."""


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise _NumberTooLong(literal[:8])
    return int(literal)


def _no_constants(literal: str) -> Any:
    raise MalformedJson(f"{literal} is not a JSON value")


def load_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``body``, or :class:`MalformedJson`. Never raises anything else."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8") from None
    try:
        document = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except _NumberTooLong:
        raise MalformedJson(f"a number has more than {MAX_INT_DIGITS} digits") from None
    except RecursionError:
        raise MalformedJson(f"JSON nested deeper than {max_depth} levels") from None
    _check_tree(document, max_depth)
    return document


def _check_tree(document: Any, max_depth: int) -> None:
    """Depth and surrogates, iteratively (the tree may be as deep as the parser allowed)."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                raise MalformedJson("a string holds a lone UTF-16 surrogate escape")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth >= max_depth:
            raise MalformedJson(f"JSON nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in node)
