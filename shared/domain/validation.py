"""Request validation for ``POST /v1/jobs``: pydantic does the typing, the contract's rules are
here."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from shared.config.settings import Settings
from shared.errors import PayloadTooLarge, RequestInvalid

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_OWNER_CHARS = 256
MAX_IDEMPOTENCY_KEY_CHARS = 255


class SubmitRequest(BaseModel):
    """The body of ``POST /v1/jobs``. Unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_name: StrictStr
    spec_md: StrictStr
    tasks_md: StrictStr
    owner: StrictStr
    idempotency_key: StrictStr
    org_slug: StrictStr | None = None
    preview_ttl_hours: StrictInt | None = None


def is_slug(value: str) -> bool:
    return bool(SLUG.match(value))


def max_body_bytes(settings: Settings) -> int:
    """Two markdown documents at their limit plus room for JSON escaping and the small fields."""
    return 2 * settings.max_input_bytes * 2 + 64 * 1024


def parse_submit(body: bytes, settings: Settings) -> SubmitRequest:
    if len(body) > max_body_bytes(settings):
        raise PayloadTooLarge("request body is too large")
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestInvalid("request body is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise RequestInvalid("request body must be a JSON object")
    try:
        request = SubmitRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        if first["type"] == "extra_forbidden":
            raise RequestInvalid(f"unknown field {where!r}") from exc
        if first["type"] == "missing":
            raise RequestInvalid(f"missing required field {where!r}") from exc
        raise RequestInvalid(f"field {where!r} has the wrong type") from exc
    _check_rules(request, settings)
    return request


def _check_rules(req: SubmitRequest, settings: Settings) -> None:
    if not is_slug(req.app_name):
        raise RequestInvalid("app_name must be a non-empty [a-z0-9-] slug not bordered by '-'")
    for name in ("spec_md", "tasks_md"):
        text: str = getattr(req, name)
        if not text.strip():
            raise RequestInvalid(f"{name} must not be empty")
        if len(text.encode("utf-8")) > settings.max_input_bytes:
            raise RequestInvalid(
                f"{name} exceeds the maximum input size of {settings.max_input_bytes} bytes"
            )
    if not req.owner.strip() or len(req.owner) > MAX_OWNER_CHARS:
        raise RequestInvalid(f"owner must be 1-{MAX_OWNER_CHARS} characters")
    if not req.idempotency_key.strip() or len(req.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise RequestInvalid(f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters")
    if req.org_slug is not None and not is_slug(req.org_slug):
        raise RequestInvalid("org_slug must be a non-empty [a-z0-9-] slug not bordered by '-'")


def request_hash(req: SubmitRequest, ttl_hours: int) -> str:
    """Normalized request fingerprint (owner excluded: it scopes the key instead)."""
    digest = hashlib.sha256()
    for part in (req.app_name, req.org_slug or "", req.spec_md, req.tasks_md):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1e")
    digest.update(str(ttl_hours).encode("ascii"))
    return digest.hexdigest()
