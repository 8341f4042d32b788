"""The layout of the one ``job`` partition of the jobs table: job rows, and the index and history
rows kept beside them so that hot paths never filter on a non-key column.

RowKeys, in the order Table storage keeps them::

    <26 Crockford chars>            the job row (newest first)            one per job, forever
    ~a~<job key>                    active: queued, building, deploying or ready
    ~c~<finished>~<job key>         canceled, teardown not yet confirmed
    ~h~<job key>~<at>-<status>      history: one per status change
    ~p~<finished>~<job key>         failed/canceled/expired, orchestration history not purged
    ~q~<slot>                       queue slot held by a queued job (slot < queue cap)

Every read on a hot path is a point read or a RowKey *range* inside this partition, so Table
storage reads only the rows it returns: the active set (bounded by the queue cap, the build slots
and the live previews), the queue (bounded by the cap), or the rows that are due (``~c~``/``~p~``
up to a time). None of them grows with the number of finished jobs kept.

Invariant: for a job row marked indexed (``ix``), the ``~a~``/``~c~``/``~p~``/``~q~`` rows that
exist for it are exactly :func:`index_rows` of that row. All rows share the PartitionKey, so every
write of a job row is one entity-group transaction (atomic, guarded by the job row's ETag) that
also adds, replaces or deletes its index rows and appends its history row. There is no crash
point at which the two disagree, so nothing needs repairing after a crash.

A job row lacks ``ix`` only if code that keeps no index wrote it: before the upgrade that added
the index, or an old instance during that rolling upgrade (which may leave rows of an earlier
state behind). The next write of such a row, or ``JobStore.reindex`` (``python -m admin
reindex``), deletes every index row the job could have (found by key, and its queue slots by
reading the queue) and writes the right ones, which restores the invariant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.domain.ids import newest_first_key
from shared.domain.models import (
    CLEANED_PHASE,
    ENDED_STATUSES,
    PURGED_PHASE,
    JobRecord,
    JobStatus,
)

PARTITION = "job"
JOB_ROWS_END = "~"  # job RowKeys are Crockford base32 (0-9, A-Z): all sort before "~"
ACTIVE = "~a~"
CANCEL_WATCH = "~c~"
HISTORY = "~h~"
PURGE = "~p~"
QUEUE = "~q~"
INDEX_VERSION = 1


def job_key(job_id: str) -> str:
    return newest_first_key(job_id)


def stamp(at: datetime) -> str:
    """Fixed-width UTC time that sorts as text: ``20261123T142801.123456Z``."""
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"


def prefix_end(prefix: str) -> str:
    """The first RowKey after every key that starts with ``prefix``: every character that
    follows a prefix in this layout sorts before ``~``."""
    return prefix + "~"


def queue_key(slot: int) -> str:
    return f"{QUEUE}{slot:05d}"


def _row(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": key,
        **{k: v for k, v in fields.items() if v is not None},
    }


def finished_or_created(job: JobRecord) -> datetime:
    return job.finished_at or job.created_at


def index_rows(job: JobRecord, queue_slot: int | None) -> dict[str, dict[str, Any]]:
    """The index rows a job row in this state must have, by RowKey."""
    rows: dict[str, dict[str, Any]] = {}
    key = job_key(job.job_id)
    if job.status.is_active:
        rows[ACTIVE + key] = _row(
            ACTIVE + key,
            job_id=job.job_id,
            status=job.status.value,
            created_at=job.created_at,
            finished_at=job.finished_at,
            preview_expires_at=job.preview_expires_at,
        )
    ended = stamp(finished_or_created(job))
    if job.status is JobStatus.CANCELED and job.phase not in (CLEANED_PHASE, PURGED_PHASE):
        watch = f"{CANCEL_WATCH}{ended}~{key}"
        rows[watch] = _row(watch, job_id=job.job_id, finished_at=finished_or_created(job))
    if job.status in ENDED_STATUSES and job.phase != PURGED_PHASE:
        purge = f"{PURGE}{ended}~{key}"
        rows[purge] = _row(purge, job_id=job.job_id, finished_at=finished_or_created(job))
    if job.status is JobStatus.QUEUED and queue_slot is not None:
        rows[queue_key(queue_slot)] = _row(
            queue_key(queue_slot), job_id=job.job_id, created_at=job.created_at
        )
    return rows


def history_row(
    job_id: str,
    before: JobStatus | None,
    after: JobStatus,
    reason: str,
    *,
    at: datetime,
    actor: str | None = None,
) -> dict[str, Any]:
    key = f"{HISTORY}{job_key(job_id)}~{stamp(at)}-{after.value}"
    return _row(
        key,
        job_id=job_id,
        from_status=before.value if before else "",
        to_status=after.value,
        reason=reason,
        actor=actor,
        at=at,
    )


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ActiveEntry:
    """What the maintenance sweeps need of an active job, read from its ``~a~`` row."""

    job_id: str
    status: JobStatus
    created_at: datetime
    finished_at: datetime | None
    preview_expires_at: datetime | None

    @classmethod
    def from_entity(cls, entity: Any) -> ActiveEntry:
        return cls(
            job_id=str(entity["job_id"]),
            status=JobStatus(entity["status"]),
            created_at=_utc(entity.get("created_at")) or datetime.min.replace(tzinfo=UTC),
            finished_at=_utc(entity.get("finished_at")),
            preview_expires_at=_utc(entity.get("preview_expires_at")),
        )


@dataclass(frozen=True)
class EndedEntry:
    """A ``~c~`` or ``~p~`` row: a finished job and when it finished."""

    job_id: str
    finished_at: datetime

    @classmethod
    def from_entity(cls, entity: Any) -> EndedEntry:
        finished = _utc(entity.get("finished_at")) or datetime.min.replace(tzinfo=UTC)
        return cls(job_id=str(entity["job_id"]), finished_at=finished)


@dataclass(frozen=True)
class QueueEntry:
    slot: int
    job_id: str


@dataclass(frozen=True)
class QueueSnapshot:
    """The queue slot rows at one moment (at most the queue cap of them)."""

    entries: tuple[QueueEntry, ...]

    @classmethod
    def from_entities(cls, entities: Iterable[Any]) -> QueueSnapshot:
        return cls(
            tuple(
                QueueEntry(int(str(e["RowKey"])[len(QUEUE) :]), str(e["job_id"])) for e in entities
            )
        )

    def __len__(self) -> int:
        return len(self.entries)

    def free_slots(self, cap: int | None) -> list[int]:
        """Slot numbers nobody holds. With a cap, only numbers below it: at most ``cap`` slot rows
        can ever exist, which is what makes the cap exact under concurrent submits."""
        taken = {e.slot for e in self.entries}
        limit = cap if cap is not None else len(taken) + 16
        return [slot for slot in range(limit) if slot not in taken]

    def position(self, job_id: str) -> int:
        """1-based place of a queued job: one more than the queued jobs submitted before it (job
        ids sort by submit time)."""
        return 1 + sum(1 for e in self.entries if e.job_id < job_id)
