"""Per-job LLM proxy tokens. Only SHA-256 hashes are stored; the plain token exists in memory
for the moment it is handed to the build backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from azure.data.tables import TableClient, TableServiceClient

from shared.domain.ids import new_proxy_token, sha256_hex
from shared.errors import NotFound, translate_azure_errors

_TOKEN_PK = "token"  # noqa: S105 - a table partition key name, not a credential


@dataclass(frozen=True)
class TokenInfo:
    job_id: str
    token_hash: str
    expires_at: datetime
    revoked: bool

    def is_live(self, now: datetime) -> bool:
        return not self.revoked and now < self.expires_at


class ProxyTokenStore:
    def __init__(self, service: TableServiceClient, *, prefix: str) -> None:
        self._service = service
        self.table: TableClient = service.get_table_client(f"{prefix}proxytokens")

    def create_tables(self) -> None:
        with translate_azure_errors("create token table"):
            self._service.create_table_if_not_exists(self.table.table_name)

    def mint(self, job_id: str, *, expires_at: datetime) -> str:
        """Create a token bound to ``job_id``; returns the plain value (never stored)."""
        token = new_proxy_token()
        digest = sha256_hex(token)
        with translate_azure_errors("store token hash"):
            # The per-job index row is written first so a revoke-by-job always finds the token.
            self.table.upsert_entity(
                {"PartitionKey": f"job_{job_id}", "RowKey": digest, "expires_at": expires_at}
            )
            self.table.create_entity(
                {
                    "PartitionKey": _TOKEN_PK,
                    "RowKey": digest,
                    "job_id": job_id,
                    "expires_at": expires_at,
                    "revoked": False,
                }
            )
        return token

    def lookup(self, token: str) -> TokenInfo | None:
        digest = sha256_hex(token)
        try:
            with translate_azure_errors("read token"):
                entity = self.table.get_entity(_TOKEN_PK, digest)
        except NotFound:
            return None
        expires = entity["expires_at"]
        return TokenInfo(
            job_id=entity["job_id"],
            token_hash=digest,
            expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC),
            revoked=bool(entity.get("revoked", False)),
        )

    def verify(self, token: str, *, now: datetime | None = None) -> TokenInfo | None:
        """The token's info if it is live, else ``None`` (unknown, revoked or expired)."""
        info = self.lookup(token)
        if info is None or not info.is_live(now or datetime.now(UTC)):
            return None
        return info

    def hashes_for_job(self, job_id: str) -> list[str]:
        with translate_azure_errors("list job tokens"):
            rows = self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": f"job_{job_id}"}, select=["RowKey"]
            )
            return [r["RowKey"] for r in rows]

    def revoke_job(self, job_id: str) -> int:
        """Revoke every token of ``job_id``; idempotent. Returns how many were live."""
        revoked = 0
        for digest in self.hashes_for_job(job_id):
            try:
                with translate_azure_errors("revoke token"):
                    entity = self.table.get_entity(_TOKEN_PK, digest)
                    if not entity.get("revoked"):
                        entity["revoked"] = True
                        self.table.update_entity(entity)
                        revoked += 1
            except NotFound:
                continue
        return revoked
