"""The one loader for the settings dataclasses: environment strings in, a validated instance out.

A settings class is a frozen stdlib dataclass; constructing it directly (tests, ``replace``) never
reads the environment. :func:`load` finds each field's variable, collects the set values as
strings and has pydantic validate and coerce them against the dataclass, so the constraints live
on the field types (``Annotated[int, Field(ge=1)]``: mypy still sees ``int``).

Invariants:
- Each field is read from exactly one variable of its own (``prefix + FIELD_NAME`` unless its
  metadata names another), optionally followed by fallbacks tried in order; a field marked
  :data:`NOT_FROM_ENV` is never read.
- A value is stripped; empty or blank counts as unset, and an unset field keeps its default.
- A secret field holding an unresolved Key Vault reference counts as unset (fail closed).
- Every refusal is a :class:`ConfigurationError` that names the variable, never the field, and
  never echoes a secret's value.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from shared.errors import ConfigurationError

T = TypeVar("T")
#: Turns a stripped, non-empty value into what pydantic validates; ``None`` means "unset".
#: Raises ``ValueError`` with a reason that reads after the variable's name.
PreParser = Callable[[str], object]
_METADATA_KEY = "env"
_KEY_VAULT_REFERENCE = re.compile(r"@\s*microsoft\s*\.\s*keyvault\s*\(", re.IGNORECASE)


def is_key_vault_reference(value: str) -> bool:
    """True when ``value`` contains ``@Microsoft.KeyVault(`` in any case or spacing: anywhere,
    not only at the start, so a key list with one unresolved entry fails closed as a whole."""
    return _KEY_VAULT_REFERENCE.search(value) is not None


def secret_setting(env: Mapping[str, str], name: str) -> str:
    """The secret's value (stripped), or ``""`` when unset or an unresolved Key Vault reference:
    an unresolved reference is "not configured", never a usable secret."""
    value = env.get(name, "").strip()
    return "" if is_key_vault_reference(value) else value


@dataclass(frozen=True)
class EnvVar:
    """How one field is read; kept in the field's metadata under ``"env"``."""

    #: The full variable name; ``None``: the class prefix + the field name in upper case.
    name: str | None = None
    #: Read in order when the variable (and each earlier fallback) is unset.
    fallbacks: tuple[str, ...] = ()
    #: Holds a secret: an unresolved Key Vault reference is unset, the value is never echoed.
    secret: bool = False
    pre_parse: PreParser | None = None


def env_var(
    name: str | None = None,
    *,
    fallbacks: tuple[str, ...] = (),
    secret: bool = False,
    pre_parse: PreParser | None = None,
) -> dict[str, EnvVar]:
    """Field metadata: ``field(default=..., metadata=env_var(...))``. A field without it is read
    from ``prefix + FIELD_NAME`` as a plain, non-secret value."""
    return {_METADATA_KEY: EnvVar(name, fallbacks, secret, pre_parse)}


#: Field metadata for a field the environment never sets (computed, or fixed in code).
NOT_FROM_ENV: Mapping[str, None] = {_METADATA_KEY: None}


@dataclass(frozen=True)
class Binding:
    """One field of a settings class and the variables it is read from, first one first."""

    field: str
    variables: tuple[str, ...]
    secret: bool
    pre_parse: PreParser | None
    required: bool

    @property
    def variable(self) -> str:
        """The field's own variable (the others are fallbacks)."""
        return self.variables[0]


def bindings(cls: type[Any], prefix: str) -> tuple[Binding, ...]:
    """Every field the environment can set, in field order."""
    found = []
    types = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_METADATA_KEY, EnvVar())
        if spec is None:
            continue
        if not isinstance(spec, EnvVar):
            raise TypeError(f"{cls.__name__}.{f.name}: metadata 'env' must be an EnvVar or None")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        found.append(
            Binding(
                field=f.name,
                variables=(spec.name or prefix + f.name.upper(), *spec.fallbacks),
                secret=spec.secret,
                pre_parse=spec.pre_parse or (whole_number if types[f.name] is int else None),
                required=required,
            )
        )
    return tuple(found)


def required_variables(cls: type[Any], prefix: str) -> tuple[str, ...]:
    """The variables of the fields without a default, in field order."""
    return tuple(b.variable for b in bindings(cls, prefix) if b.required)


@dataclass(frozen=True)
class _Read:
    variable: str  # the one the value came from (the field's own, or a fallback)
    raw: str
    secret: bool

    def refusal(self, reason: str, where: str = "") -> ConfigurationError:
        """``where``: the member of a structured value (``['key']``) the reason is about."""
        shown = "" if self.secret else f", got {self.raw!r}"
        return ConfigurationError(f"{self.variable}{where} {reason}{shown}")


def _read(environ: Mapping[str, str], binding: Binding) -> _Read | None:
    """The first set variable of the binding; every candidate is looked up (the drift test
    records the lookups)."""
    hits = []
    for variable in binding.variables:
        if binding.secret:
            raw = secret_setting(environ, variable)
        else:
            raw = environ.get(variable, "").strip()
        if raw:
            hits.append(_Read(variable, raw, binding.secret))
    return hits[0] if hits else None


def load(
    cls: type[T],
    environ: Mapping[str, str],
    *,
    prefix: str,
    computed: Mapping[str, object] | None = None,
    missing: str = "missing required settings: ",
) -> T:
    """An instance of the dataclass ``cls`` from ``environ``; ``computed`` sets the
    :data:`NOT_FROM_ENV` fields that are not left at their defaults. Unset required fields are
    refused together, in one message: ``missing`` followed by their variables."""
    values: dict[str, object] = dict(computed or {})
    found = [(binding, _read(environ, binding)) for binding in bindings(cls, prefix)]
    reads = {binding.field: read for binding, read in found if read is not None}
    unset = [binding.variable for binding, read in found if binding.required and read is None]
    if unset:
        raise ConfigurationError(missing + ", ".join(unset))
    for binding, read in found:
        value = None if read is None else _pre_parse(binding, read)
        if value is not None:
            values[binding.field] = value
        elif binding.required:  # set, but to nothing (a list of no entries)
            raise ConfigurationError(missing + binding.variable)
    try:
        settings: T = _adapter(cls).validate_python(values)
    except ValidationError as exc:
        # ``from None``: pydantic's own text shows the input, which may be a secret.
        raise _refusal(exc.errors(include_input=False), reads, cls) from None
    return settings


def setting_text(
    cls: type[Any], field_name: str, environ: Mapping[str, str], *, prefix: str
) -> str | None:
    """One text field of ``cls`` read as :func:`load` reads it (its own variable, then its
    fallbacks; stripped; blank is unset), without loading the rest of the class: for code that
    needs this one setting in a process where the class's required fields are unset."""
    if typing.get_type_hints(cls)[field_name] not in (str, str | None):
        raise TypeError(f"{cls.__name__}.{field_name} is not a text field")
    (binding,) = (b for b in bindings(cls, prefix) if b.field == field_name)
    read = _read(environ, binding)
    return None if read is None else read.raw


def _pre_parse(binding: Binding, read: _Read) -> object:
    if binding.pre_parse is None:
        return read.raw
    try:
        return binding.pre_parse(read.raw)
    except ValueError as exc:
        raise read.refusal(str(exc)) from None


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    """Built once per class (building one costs milliseconds)."""
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def _refusal(
    errors: Sequence[Mapping[str, Any]], reads: Mapping[str, _Read], cls: type[Any]
) -> ConfigurationError:
    """The first error, named by its variable (one bad value at a time, as an operator fixes
    them)."""
    error = errors[0]
    field, *inner = error["loc"]
    read = reads.get(str(field))
    if read is None:  # a computed value: a bug in the caller, not in the environment
        return ConfigurationError(f"{cls.__name__}.{field}: {error['msg']}")
    return read.refusal(_reason(error), "".join(f"[{key!r}]" for key in inner))


_COMPARISONS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _reason(error: Mapping[str, Any]) -> str:
    # ``error`` is one of ``ValidationError.errors()`` (pydantic-core's ErrorDetails shape).
    """What is wrong, worded to follow the variable's name."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind.startswith("int_"):
        return "must be an integer"
    if kind.startswith("float_"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in _COMPARISONS:
        return f"must be {_COMPARISONS[kind]} {next(iter(ctx.values()))}"
    if kind == "dict_type":
        return "must be a JSON object"
    message = str(error["msg"])  # pydantic's wording, without the input
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ")
    return message


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*")


def whole_number(raw: str) -> str:
    """The pre-parser of every ``int`` field: what Python's ``int()`` reads, in ASCII digits only
    (pydantic alone would also take ``1.0``)."""
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise ValueError("must be an integer")
    return raw


def comma_list(raw: str) -> tuple[str, ...] | None:
    """``a, b,,c`` -> ``("a", "b", "c")``; no entries at all is unset."""
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    return entries or None


def json_object(raw: str) -> object:
    """A JSON object (its member types are the field's to check)."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError("must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def url_base(raw: str) -> str:
    """A base URL without its trailing slashes (paths are appended to it)."""
    return raw.rstrip("/")
