"""Scrub secrets out of anything that is about to be stored or logged."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    re.compile(r"\bfb_[0-9A-Za-z]{10,}"),  # proxy tokens
    re.compile(r"(?i)\bbearer\s+[^\s\"']+"),
    re.compile(r"(?i)([?&](?:sig|se|sp|sv|skoid|sktid|skt|ske|sks|skv)=)[^&\s\"']+"),
    re.compile(r"(?i)(AccountKey=)[^;\s\"']+"),
    re.compile(r"\bsk-ant-[0-9A-Za-z_-]{8,}"),
)
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "token",
        "api_key",
        "apikey",
        "x-api-key",
        "sas",
        "sas_url",
        "password",
        "secret",
        "key",
        "grant",
        "credential",
        "auth_token",
    }
)


def scrub_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def scrub(value: Any) -> Any:
    """Deep-copy ``value`` with secret-looking keys and values redacted."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in _SECRET_KEYS else scrub(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
