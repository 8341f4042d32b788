"""Identifiers: job ids (``fj_<ULID>``), proxy tokens (``fb_<ULID>``) and derived resource names."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from ulid import ULID

#: The job id rule as a JSON Schema (ECMA) pattern, for the API document.
JOB_ID_PATTERN = r"^fj_[0-9A-HJKMNP-TV-Z]{26}$"
_JOB_ID = re.compile(r"fj_[0-9A-HJKMNP-TV-Z]{26}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INVERT = str.maketrans(_CROCKFORD, _CROCKFORD[::-1])


def new_job_id() -> str:
    return f"fj_{ULID()}"


def new_proxy_token() -> str:
    # 80 random bits + 48 time bits; stored only as a SHA-256 hash.
    return f"fb_{ULID()}"


def is_job_id(value: str) -> bool:
    # fullmatch: ``$`` would also match before a trailing newline, which is no part of an id.
    return _JOB_ID.fullmatch(value) is not None


def newest_first_key(job_id: str) -> str:
    """A RowKey that sorts newer job ids first (Table storage returns ascending RowKey order)."""
    return job_id[3:].translate(_INVERT)


def job_id_time(job_id: str) -> datetime:
    """When the job id was minted (the ULID's millisecond timestamp)."""
    return ULID.from_str(job_id[3:]).datetime.astimezone(UTC)


def job_id_time_prefix(at: datetime, chars: int = 10) -> str:
    """The first ``chars`` characters of every job id minted at ``at`` (after ``fj_``): the ULID
    encodes its time in its first 10 characters, 5 bits each, most significant first."""
    return str(ULID.from_datetime(at))[:chars]


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def azure_name(prefix: str, job_id: str) -> str:
    """``<prefix>-<job id lowercased>``: deterministic, DNS-safe, at most 32 characters."""
    slug = re.sub(r"[^a-z0-9]", "-", job_id.lower())
    return f"{prefix}-{slug}"[:32].rstrip("-")
