"""Bearer-key auth for ``/v1``: fail-closed, constant-time, with optional per-key limits.

``FOUNDRY_SERVICE_API_KEYS`` stays today's comma-separated list of opaque keys (each with full
access). A key may carry limits after ``|`` separators, e.g.
``k1,k2|scopes=jobs:read|owner=knowmler|org=acme+beta``: ``scopes`` (``jobs:read``, ``jobs:write``,
``admin``; ``+``-separated), ``owner`` (jobs it may submit and see) and ``org`` (org slugs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from shared.config.settings import is_key_vault_reference
from shared.errors import ConfigurationError

SCOPES = frozenset({"jobs:read", "jobs:write", "admin"})
BEARER = "Bearer "


@dataclass(frozen=True)
class Principal:
    key_id: str  # first 8 hex chars of the key's SHA-256: safe to log and audit
    scopes: frozenset[str]
    owners: frozenset[str] | None  # None = any owner
    orgs: frozenset[str] | None  # None = any org (and no org)

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_use_owner(self, owner: str) -> bool:
        return self.owners is None or owner in self.owners

    def may_use_org(self, org: str | None) -> bool:
        return self.orgs is None or (org is not None and org in self.orgs)

    def may_see(self, owner: str, org: str | None) -> bool:
        return self.may_use_owner(owner) and self.may_use_org(org)


@dataclass(frozen=True)
class _Key:
    digest: bytes
    principal: Principal


def parse_keys(raw: str) -> list[_Key]:
    """The configured keys. An unresolved Key Vault reference anywhere in ``raw`` means no keys
    at all (fail closed): that text is public, so it must never become a key."""
    keys: list[_Key] = []
    if is_key_vault_reference(raw):
        return keys
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        secret, *limits = (p.strip() for p in entry.split("|"))
        if not secret:
            raise ConfigurationError("FOUNDRY_SERVICE_API_KEYS has an entry with limits but no key")
        scopes: frozenset[str] = frozenset({"jobs:read", "jobs:write"})
        owners = orgs = None
        for limit in limits:
            name, _, value = limit.partition("=")
            values = frozenset(v for v in value.split("+") if v)
            if name == "scopes":
                unknown = values - SCOPES
                if unknown or not values:
                    raise ConfigurationError(
                        f"FOUNDRY_SERVICE_API_KEYS: unknown scopes {sorted(unknown)}"
                    )
                scopes = values
            elif name == "owner" and values:
                owners = values
            elif name == "org" and values:
                orgs = values
            else:
                raise ConfigurationError(f"FOUNDRY_SERVICE_API_KEYS: bad key limit {name!r}")
        digest = hashlib.sha256(secret.encode()).digest()
        keys.append(_Key(digest, Principal(digest.hex()[:8], scopes, owners, orgs)))
    return keys


class Authenticator:
    def __init__(self, raw_keys: str) -> None:
        self._keys = parse_keys(raw_keys)

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller's principal, or ``None``. No keys configured -> always ``None``.

        Compares SHA-256 digests with :func:`hmac.compare_digest` against *every* key, without
        short-circuiting, so timing reveals neither a match nor which key matched.
        """
        header = headers.get("authorization") or headers.get("Authorization") or ""
        if not header.startswith(BEARER) or not self._keys:
            return None
        presented = hashlib.sha256(header[len(BEARER) :].encode()).digest()
        found: Principal | None = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                found = key.principal
        return found
