"""Uniqueness claims made with conditional inserts (never check-then-act):

* idempotency: one row per (owner, idempotency_key) naming the job it created;
* app names: one row per (org_slug, app_name) held by the active job that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.domain.ids import sha256_hex
from shared.errors import AlreadyExists, ConcurrencyConflict, NotFound, translate_azure_errors

NO_ORG = "~"  # PartitionKey for jobs without an org_slug (not a valid slug, so no collision)


@dataclass(frozen=True)
class IdempotencyClaim:
    job_id: str
    request_hash: str
    claimed_at: datetime
    etag: str | None
    won: bool


@dataclass(frozen=True)
class AppNameHolder:
    job_id: str
    claimed_at: datetime | None


class ClaimStore:
    def __init__(self, service: TableServiceClient, *, prefix: str) -> None:
        self._service = service
        self.idempotency: TableClient = service.get_table_client(f"{prefix}idempotency")
        self.app_names: TableClient = service.get_table_client(f"{prefix}appnames")

    def create_tables(self) -> None:
        for table in (self.idempotency, self.app_names):
            with translate_azure_errors(f"create table {table.table_name}"):
                self._service.create_table_if_not_exists(table.table_name)

    # -- idempotency -------------------------------------------------------------------------
    @staticmethod
    def _idem_keys(owner: str, key: str) -> tuple[str, str]:
        return sha256_hex(owner), sha256_hex(key)

    @classmethod
    def _idem_row(
        cls, owner: str, key: str, *, job_id: str, request_hash: str, at: datetime
    ) -> dict[str, Any]:
        pk, rk = cls._idem_keys(owner, key)
        return {
            "PartitionKey": pk,
            "RowKey": rk,
            "job_id": job_id,
            "request_hash": request_hash,
            "claimed_at": at,
        }

    def claim_idempotency(
        self, owner: str, key: str, *, job_id: str, request_hash: str
    ) -> IdempotencyClaim:
        """Insert the claim; if someone holds it already, return theirs with ``won=False``."""
        now = datetime.now(UTC)
        row = self._idem_row(owner, key, job_id=job_id, request_hash=request_hash, at=now)
        try:
            with translate_azure_errors("claim idempotency key"):
                meta = self.idempotency.create_entity(row)
            return IdempotencyClaim(job_id, request_hash, now, meta.get("etag"), won=True)
        except AlreadyExists:
            pass
        existing = self.get_idempotency(owner, key)
        if existing is None:  # released between our insert and read: try once more
            return self.claim_idempotency(owner, key, job_id=job_id, request_hash=request_hash)
        return existing

    def get_idempotency(self, owner: str, key: str) -> IdempotencyClaim | None:
        pk, rk = self._idem_keys(owner, key)
        try:
            with translate_azure_errors("read idempotency key"):
                entity = self.idempotency.get_entity(pk, rk)
        except NotFound:
            return None
        claimed = entity.get("claimed_at") or datetime.now(UTC)
        return IdempotencyClaim(
            job_id=entity["job_id"],
            request_hash=entity["request_hash"],
            claimed_at=claimed if claimed.tzinfo else claimed.replace(tzinfo=UTC),
            etag=entity.metadata.get("etag"),
            won=False,
        )

    def take_over_idempotency(
        self, owner: str, key: str, stale: IdempotencyClaim, *, job_id: str, request_hash: str
    ) -> IdempotencyClaim | None:
        """Replace a claim whose job row never appeared (its submitter died). ETag-guarded."""
        now = datetime.now(UTC)
        row = self._idem_row(owner, key, job_id=job_id, request_hash=request_hash, at=now)
        try:
            with translate_azure_errors("take over idempotency key"):
                meta = self.idempotency.update_entity(
                    row,
                    mode=UpdateMode.REPLACE,
                    etag=stale.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ConcurrencyConflict, NotFound):
            return None
        return IdempotencyClaim(job_id, request_hash, now, meta.get("etag"), won=True)

    def release_idempotency(self, owner: str, key: str, claim: IdempotencyClaim) -> None:
        """Give the key back after a refused submit, so the caller may retry it later."""
        pk, rk = self._idem_keys(owner, key)
        try:
            with translate_azure_errors("release idempotency key"):
                self.idempotency.delete_entity(
                    pk, rk, etag=claim.etag, match_condition=MatchConditions.IfNotModified
                )
        except (ConcurrencyConflict, NotFound):
            pass

    # -- app names ---------------------------------------------------------------------------
    def claim_app_name(
        self, app_name: str, org_slug: str | None, *, job_id: str
    ) -> AppNameHolder | None:
        """Claim ``(org, app)`` for ``job_id``. Returns ``None`` on success, else who holds it
        (the caller checks whether that job is still active and may take the claim over)."""
        pk = org_slug or NO_ORG
        row = {"PartitionKey": pk, "RowKey": app_name, "job_id": job_id}
        for _ in range(3):
            try:
                with translate_azure_errors("claim app name"):
                    self.app_names.create_entity({**row, "claimed_at": datetime.now(UTC)})
                return None
            except AlreadyExists:
                pass
            try:
                with translate_azure_errors("read app name"):
                    entity = self.app_names.get_entity(pk, app_name)
            except NotFound:
                continue  # released between our insert and our read: try the insert again
            claimed = entity.get("claimed_at")
            if isinstance(claimed, datetime) and claimed.tzinfo is None:
                claimed = claimed.replace(tzinfo=UTC)
            return AppNameHolder(
                str(entity["job_id"]), claimed if isinstance(claimed, datetime) else None
            )
        raise ConcurrencyConflict(f"app name {app_name!r} keeps changing hands")

    def replace_app_name_holder(
        self, app_name: str, org_slug: str | None, *, stale_job_id: str, job_id: str
    ) -> bool:
        pk = org_slug or NO_ORG
        try:
            with translate_azure_errors("replace app name holder"):
                entity = self.app_names.get_entity(pk, app_name)
                if entity["job_id"] != stale_job_id:
                    return False
                self.app_names.update_entity(
                    {
                        "PartitionKey": pk,
                        "RowKey": app_name,
                        "job_id": job_id,
                        "claimed_at": datetime.now(UTC),
                    },
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ConcurrencyConflict, NotFound):
            return False
        return True

    def release_app_name(self, app_name: str, org_slug: str | None, *, job_id: str) -> None:
        """Drop the claim if ``job_id`` still holds it (idempotent)."""
        pk = org_slug or NO_ORG
        try:
            with translate_azure_errors("release app name"):
                entity = self.app_names.get_entity(pk, app_name)
                if entity["job_id"] != job_id:
                    return
                self.app_names.delete_entity(
                    pk,
                    app_name,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ConcurrencyConflict, NotFound):
            pass


STALE_CLAIM_AFTER = timedelta(seconds=60)
