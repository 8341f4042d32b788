"""Exact build slots: ``MAX_CONCURRENT_BUILDS`` lease rows, taken with conditional writes.

A slot is held from the claim until the builder exits: ``release`` frees it at once, and a slot
whose holder is no longer building is free anyway (the lease heals itself, so a lost release
costs nothing), or its holder has been stuck in ``queued`` longer than
``CLAIM_GRACE`` (it died between winning the slot and moving to ``building``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.domain.models import JobStatus
from shared.errors import AlreadyExists, ConcurrencyConflict, NotFound, translate_azure_errors

SLOT_PK = "slot"
CLAIM_GRACE = timedelta(minutes=2)
HOLDING = frozenset({JobStatus.BUILDING})


class BuildSlots:
    def __init__(self, service: TableServiceClient, *, prefix: str) -> None:
        self._service = service
        self.table: TableClient = service.get_table_client(f"{prefix}buildslots")

    def create_tables(self) -> None:
        with translate_azure_errors("create build slot table"):
            self._service.create_table_if_not_exists(self.table.table_name)

    def claim(
        self, job_id: str, *, slots: int, status_of: Callable[[str], JobStatus | None]
    ) -> bool:
        """Take a free slot for ``job_id`` (or confirm it holds one). ``status_of`` tells the
        current status of another holder (``None`` when that job does not exist)."""
        now = datetime.now(UTC)
        row = {"PartitionKey": SLOT_PK, "job_id": job_id, "claimed_at": now}
        for index in range(slots):
            key = f"{index:03d}"
            try:
                with translate_azure_errors("read build slot"):
                    current = self.table.get_entity(SLOT_PK, key)
            except NotFound:
                try:
                    with translate_azure_errors("take empty build slot"):
                        self.table.create_entity({**row, "RowKey": key})
                    return True
                except AlreadyExists:
                    continue  # someone else took it this instant
            holder = str(current["job_id"])
            if holder == job_id:
                return True
            if not self._is_free(holder, current.get("claimed_at"), now, status_of):
                continue
            try:
                with translate_azure_errors("take over build slot"):
                    self.table.update_entity(
                        {**row, "RowKey": key},
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return True
            except (ConcurrencyConflict, NotFound):
                continue
        return False

    def held(self, status_of: Callable[[str], JobStatus | None]) -> set[str]:
        """The jobs holding a slot now, judged as :meth:`claim` judges a holder (one query over
        ``MAX_CONCURRENT_BUILDS`` rows at most): a row whose holder finished, or sits queued past
        ``CLAIM_GRACE``, is a free slot."""
        now = datetime.now(UTC)
        with translate_azure_errors("list build slots"):
            rows = list(
                self.table.query_entities(
                    "PartitionKey eq @pk",
                    parameters={"pk": SLOT_PK},
                    select=["job_id", "claimed_at"],
                )
            )
        holders = ((str(row["job_id"]), row.get("claimed_at")) for row in rows)
        return {
            job_id
            for job_id, claimed_at in holders
            if not self._is_free(job_id, claimed_at, now, status_of)
        }

    def release(self, job_id: str) -> bool:
        """Free the slot ``job_id`` holds, if any (ETag-guarded: a slot taken over meanwhile is
        left alone). True when a slot was freed."""
        query = "PartitionKey eq @pk and job_id eq @job"
        with translate_azure_errors("find build slot"):
            rows = list(self.table.query_entities(query, parameters={"pk": SLOT_PK, "job": job_id}))
        freed = False
        for row in rows:
            try:
                with translate_azure_errors("release build slot"):
                    self.table.delete_entity(
                        SLOT_PK,
                        str(row["RowKey"]),
                        etag=row.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                freed = True
            except (ConcurrencyConflict, NotFound):
                continue
        return freed

    @staticmethod
    def _is_free(
        holder: str, claimed_at: object, now: datetime, status_of: Callable[[str], JobStatus | None]
    ) -> bool:
        status = status_of(holder)
        if status in HOLDING:
            return False
        if status is JobStatus.QUEUED and isinstance(claimed_at, datetime):
            stamp = claimed_at if claimed_at.tzinfo else claimed_at.replace(tzinfo=UTC)
            return now - stamp > CLAIM_GRACE
        return True
