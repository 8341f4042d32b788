"""``app.get_functions()`` may run only once per process (a second call reports duplicate
names), so everything that needs the indexed functions goes through this cache."""

from __future__ import annotations

from typing import Any

_CACHE: dict[int, list[Any]] = {}


def indexed_functions(app: Any) -> list[Any]:
    key = id(app)
    if key not in _CACHE:
        _CACHE[key] = list(app.get_functions())
    return _CACHE[key]


def binding_types(function: Any) -> set[str]:
    return {b.type for b in function.get_bindings()}
