"""Request validation for ``POST /v1/jobs``.

:class:`SubmitRequest` is the one statement of the body's shape: its field constraints (slug
pattern, lengths, the i32 range of ``preview_ttl_hours``) validate requests *and* become the
``SubmitRequest`` schema of ``/v1/openapi.json``. Messages follow the original service
(``models.rs::validate_submit``): a body that does not deserialize is
``malformed or incomplete request body``; a rule broken by a well-typed body names the rule, and
rules are checked in the original's order (``app_name``, ``spec_md``, ``tasks_md``, ``owner``,
``idempotency_key``, ``org_slug``). Unknown fields are ignored, as ``serde`` ignores them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from shared.config.settings import Settings
from shared.domain.json_body import MALFORMED, load_json
from shared.errors import PayloadTooLarge, RequestInvalid

#: A DNS label: 1-63 of ``[a-z0-9-]``, not starting or ending with ``-``. Anchored with ``\Z``-
#: equivalent semantics everywhere it is used: pydantic's (Rust) regex and JSON Schema's ECMA regex
#: match ``$`` only at the very end, and :func:`is_slug` uses ``fullmatch``.
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_OWNER_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 255
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
SLUG_RULE = "must be a non-empty [a-z0-9-] slug not bordered by '-'"

Slug = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=63,
        pattern=SLUG_PATTERN,
        description="A DNS label: [a-z0-9-], 1-63 characters, not starting or ending with '-'.",
    ),
]
Markdown = Annotated[
    StrictStr,
    Field(
        min_length=1,
        description="Markdown. At most FOUNDRY_SERVICE_MAX_INPUT_BYTES (default 524288) bytes "
        "once UTF-8 encoded.",
    ),
]


class SubmitRequest(BaseModel):
    """The body of ``POST /v1/jobs``. Field order is the original's validation order."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        title="SubmitRequest",
        json_schema_extra={
            "description": "Unknown fields are ignored.",
            "examples": [
                {
                    "app_name": "wishful-stickers",
                    "org_slug": "acme",
                    "owner": "knowmler",
                    "idempotency_key": "7f9c1c1e-2b1a-4c55-9d7a-0b6c2f3f9a11",
                    "spec_md": "# Wishful stickers\n\nA page that sells stickers.\n",
                    "tasks_md": "- [ ] T1: Build the page\n",
                    "preview_ttl_hours": 24,
                }
            ],
        },
    )

    app_name: Slug
    spec_md: Markdown
    tasks_md: Markdown
    owner: Annotated[
        StrictStr,
        Field(min_length=1, max_length=MAX_OWNER_CHARS, description="Opaque caller metadata."),
    ]
    idempotency_key: Annotated[
        StrictStr,
        Field(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_CHARS,
            description="Scoped per owner; a replay with the same body returns the same job.",
        ),
    ]
    org_slug: Slug | None = None
    preview_ttl_hours: (
        Annotated[
            StrictInt,
            Field(
                ge=I32_MIN,
                le=I32_MAX,
                description="Clamped to FOUNDRY_SERVICE_{MIN,MAX}_TTL_HOURS (1..72); "
                "default FOUNDRY_SERVICE_DEFAULT_TTL_HOURS (24).",
            ),
        ]
        | None
    ) = None


#: The message for a well-typed value that breaks a field's rule (the original's wording).
RULE_MESSAGES = {
    "app_name": f"app_name {SLUG_RULE}",
    "spec_md": "spec_md must not be empty",
    "tasks_md": "tasks_md must not be empty",
    "owner": "owner must not be empty",
    "idempotency_key": "idempotency_key must not be empty",
    "org_slug": f"org_slug {SLUG_RULE}",
}
#: Longer than the service allows (the original has no upper bound for these two).
TOO_LONG_MESSAGES = {
    "owner": f"owner must be at most {MAX_OWNER_CHARS} characters",
    "idempotency_key": f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters",
}
#: pydantic error types that mean "this would not deserialize" in the original (``serde``).
_SHAPE_ERRORS = frozenset({"string_type", "int_type", "int_from_float", "model_type"})
_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal"})


def is_slug(value: str) -> bool:
    return SLUG.fullmatch(value) is not None


def max_body_bytes(settings: Settings) -> int:
    """Two markdown documents at their limit plus room for JSON escaping and the small fields."""
    return 2 * settings.max_input_bytes * 2 + 64 * 1024


def parse_submit(body: bytes, settings: Settings) -> SubmitRequest:
    if len(body) > max_body_bytes(settings):
        raise PayloadTooLarge("request body is too large")
    raw: Any = load_json(body)
    if not isinstance(raw, dict):
        raise RequestInvalid(f"{MALFORMED}: the body must be a JSON object")
    try:
        request = SubmitRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestInvalid(_message(exc, raw, settings)) from None
    _check_sizes(raw, settings, before=None)
    return request


def _message(exc: ValidationError, raw: dict[str, Any], settings: Settings) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    for error in errors:  # a shape error wins: serde fails before validate_submit runs
        field = str(error["loc"][0]) if error["loc"] else "body"
        if error["type"] == "missing":
            return f"{MALFORMED}: missing required field '{field}'"
        if error["type"] in _RANGE_ERRORS:
            return f"{MALFORMED}: field '{field}' is outside the 32-bit integer range"
        if error["type"] in _SHAPE_ERRORS:
            return f"{MALFORMED}: field '{field}' has the wrong type"
    broken = {str(error["loc"][0]): error["type"] for error in reversed(errors)}
    first = next(name for name in SubmitRequest.model_fields if name in broken)
    _check_sizes(raw, settings, before=first)
    if broken[first] == "string_too_long" and first in TOO_LONG_MESSAGES:
        return TOO_LONG_MESSAGES[first]
    return RULE_MESSAGES[first]


def _check_sizes(values: dict[str, Any], settings: Settings, *, before: str | None) -> None:
    """The one rule that depends on configuration, so it cannot live in the model. Checked in the
    original's order: only for the fields that come before ``before`` (all when ``None``)."""
    order = list(SubmitRequest.model_fields)
    limit = order.index(before) if before is not None else len(order)
    for name in ("spec_md", "tasks_md"):
        if order.index(name) >= limit:
            continue
        if len(values[name].encode("utf-8")) > settings.max_input_bytes:
            raise RequestInvalid(
                f"{name} exceeds the maximum input size of {settings.max_input_bytes} bytes"
            )


def request_hash(req: SubmitRequest, ttl_hours: int) -> str:
    """Normalized request fingerprint (owner excluded: it scopes the key instead)."""
    digest = hashlib.sha256()
    for part in (req.app_name, req.org_slug or "", req.spec_md, req.tasks_md):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1e")
    digest.update(str(ttl_hours).encode("ascii"))
    return digest.hexdigest()
