"""Job state in Azure Table storage: one current row per job, its index rows and its history rows,
all in one partition (layout and invariant in :mod:`shared.storage.job_index`).

Every change of a job row is a read, a check (the state machine for status changes) and one
entity-group transaction: the ETag-conditional write of the job row together with the index rows
it implies and, for a status change, its history row."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared.domain.models import ACTIVE_STATUSES, JobRecord, JobStatus
from shared.domain.sanitize import scrub
from shared.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    IllegalTransition,
    NotFound,
    QueueFull,
    translate_azure_errors,
)
from shared.storage import job_index as ix
from shared.storage.job_index import (
    ActiveEntry,
    EndedEntry,
    QueueSnapshot,
    index_rows,
    job_key,
)

JOBS_PARTITION = ix.PARTITION
_JSON_FIELDS = ("quality", "detail")
_MAX_CAS_ATTEMPTS = 8
#: Concurrent submits that pick the same free queue slot retry with a fresh snapshot; each round
#: at least one of them wins, so this bounds the wait, not correctness.
_MAX_SLOT_ATTEMPTS = 64
_INDEXED = "ix"
_QUEUE_SLOT = "qs"
#: Queue positions shown to pollers come from a read of the queue at most this old, so one read
#: (up to the queue cap of rows) serves every poll in that time: Q jobs polled while a queue
#: drains cost O(Q) entities per second, not O(Q^2). A position may lag another instance's change
#: by this long; this process's own queue changes drop the copy at once, and a job's status is
#: always read fresh.
POSITIONS_MAX_AGE_SECS = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def record_to_entity(record: JobRecord, *, queue_slot: int | None = None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": JOBS_PARTITION,
        "RowKey": job_key(record.job_id),
        _INDEXED: ix.INDEX_VERSION,
    }
    if queue_slot is not None:
        entity[_QUEUE_SLOT] = queue_slot
    for f in fields(record):
        if f.name == "etag":
            continue
        value = getattr(record, f.name)
        if f.name in _JSON_FIELDS:
            value = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, JobStatus):
            value = value.value
        if value is None:
            continue  # Table storage has no null; absent means None
        entity[f.name] = value
    return entity


def entity_to_record(entity: Any) -> JobRecord:
    data = dict(entity)
    kwargs: dict[str, Any] = {}
    for f in fields(JobRecord):
        if f.name == "etag" or f.name not in data:
            continue
        value = data[f.name]
        if f.name in _JSON_FIELDS:
            value = json.loads(value)
        elif f.name == "status":
            value = JobStatus(value)
        elif f.name.endswith("_at"):
            value = _as_utc(value)
        elif f.name in ("cost_usd",):
            value = float(value)
        elif f.name in ("percent", "ttl_hours", "log_offset", "input_tokens", "output_tokens"):
            value = int(value)
        kwargs[f.name] = value
    record = JobRecord(**kwargs)
    record.etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
    return record


_TOKEN_VALUE = re.compile(r"[!-~]{0,1024}")


def encode_cursor(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        token = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("cursor is malformed") from exc
    # Only the Tables SDK's own shape passes: {"PartitionKey": str, "RowKey": str}, printable
    # ASCII, so a tampered cursor is refused here rather than by the service later.
    if not isinstance(token, dict) or not set(token) <= {"PartitionKey", "RowKey"}:
        raise ValueError("cursor is malformed")
    for value in token.values():
        if not isinstance(value, str) or not _TOKEN_VALUE.fullmatch(value):
            raise ValueError("cursor is malformed")
    return token


def _any_of(column: str, prefix: str, values: list[str], params: dict[str, Any]) -> str:
    """``( col eq @p0 or col eq @p1 )``. The spaces matter: the SDK's parameter substitution
    splits the filter on whitespace, so ``@p0)`` would not be recognised."""
    terms = []
    for i, value in enumerate(values):
        params[f"{prefix}{i}"] = value
        terms.append(f"{column} eq @{prefix}{i}")
    return "( " + " or ".join(terms) + " )"


_JOB_ROWS = "PartitionKey eq @pk and RowKey lt @jobs_end"
_KEY_RANGE = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"


def _job_rows_params() -> dict[str, Any]:
    return {"pk": JOBS_PARTITION, "jobs_end": ix.JOB_ROWS_END}


@dataclass(frozen=True)
class _Stored:
    """A job row as read: the record plus what only storage needs to know about it."""

    job: JobRecord
    queue_slot: int | None
    indexed: bool


@dataclass(frozen=True)
class Inserted:
    job: JobRecord
    queue_position: int | None


class _OperationRefused(Exception):
    """One operation of a transaction was refused (so none of them happened)."""

    def __init__(self, index: int, status: int) -> None:
        super().__init__(f"operation {index} refused with HTTP {status}")
        self.index = index
        self.status = status


class JobStore:
    """Typed access to the ``<prefix>jobs`` table (and the legacy ``<prefix>jobhistory``)."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        prefix: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._clock = clock
        self._positions_lock = threading.Lock()
        self._queue_writes = 0  # this process's queue changes so far
        self._positions_from: tuple[int, float, QueueSnapshot] | None = None
        self.jobs: TableClient = service.get_table_client(f"{prefix}jobs")
        # History rows live in the jobs partition now (written in the job row's transaction);
        # this table holds the rows of transitions made before that, still shown by list_history.
        self.history: TableClient = service.get_table_client(f"{prefix}jobhistory")

    def create_tables(self) -> None:
        for table in (self.jobs, self.history):
            with translate_azure_errors(f"create table {table.table_name}"):
                self._service.create_table_if_not_exists(table.table_name)

    # -- reads -----------------------------------------------------------------------------
    def _read(self, job_id: str) -> _Stored:
        with translate_azure_errors("read job"):
            entity = self.jobs.get_entity(JOBS_PARTITION, job_key(job_id))
        slot = entity.get(_QUEUE_SLOT)
        return _Stored(
            job=entity_to_record(entity),
            queue_slot=int(slot) if slot is not None else None,
            indexed=bool(entity.get(_INDEXED)),
        )

    def get_job(self, job_id: str) -> JobRecord:
        return self._read(job_id).job

    def find_job(self, job_id: str) -> JobRecord | None:
        try:
            return self.get_job(job_id)
        except NotFound:
            return None

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        owner: str | None = None,
        owners: Iterable[str] | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        clauses = [_JOB_ROWS]
        params = _job_rows_params()
        if status is not None:
            clauses.append("status eq @status")
            params["status"] = status.value
        if owner is not None:
            clauses.append("owner eq @owner")
            params["owner"] = owner
        allowed = list(owners or [])
        if allowed:
            clauses.append(_any_of("owner", "o", allowed, params))
        with translate_azure_errors("list jobs"):
            pages = self.jobs.query_entities(
                " and ".join(clauses), parameters=params, results_per_page=page_size
            ).by_page(continuation_token=decode_cursor(cursor) if cursor else None)
            page = next(pages, None)
            records = [entity_to_record(e) for e in page] if page is not None else []
            token = pages.continuation_token  # type: ignore[attr-defined]
        return records, encode_cursor(token)

    def iter_jobs(
        self,
        statuses: Iterable[JobStatus],
        *,
        finished_after: datetime | None = None,
        finished_before: datetime | None = None,
        phase_not: str | None = None,
    ) -> list[JobRecord]:
        """Full job rows by status: a scan of every job row, for operators and tests. The
        periodic sweeps read the index instead (:meth:`active`, :meth:`canceled_since`,
        :meth:`purge_due`)."""
        params = _job_rows_params()
        query = f"{_JOB_ROWS} and " + _any_of("status", "s", [s.value for s in statuses], params)
        if finished_after is not None:
            query += " and finished_at ge @after"
            params["after"] = finished_after
        if finished_before is not None:
            query += " and finished_at le @before"
            params["before"] = finished_before
        if phase_not is not None:
            query += " and phase ne @phase"
            params["phase"] = phase_not
        with translate_azure_errors("query jobs"):
            return [entity_to_record(e) for e in self.jobs.query_entities(query, parameters=params)]

    def _key_range(
        self, lo: str, hi: str, what: str, *, select: list[str] | None = None
    ) -> list[Any]:
        params = {"pk": JOBS_PARTITION, "lo": lo, "hi": hi}
        with translate_azure_errors(what):
            return list(self.jobs.query_entities(_KEY_RANGE, parameters=params, select=select))

    def active(self) -> list[ActiveEntry]:
        """Every queued, building, deploying or ready job (the index's ``~a~`` rows)."""
        rows = self._key_range(ix.ACTIVE, ix.prefix_end(ix.ACTIVE), "read active jobs")
        return [ActiveEntry.from_entity(e) for e in rows]

    def canceled_since(self, since: datetime) -> list[EndedEntry]:
        """Canceled jobs whose teardown is not confirmed, canceled at or after ``since``."""
        lo = ix.CANCEL_WATCH + ix.stamp(since)
        rows = self._key_range(lo, ix.prefix_end(ix.CANCEL_WATCH), "read canceled jobs")
        return [EndedEntry.from_entity(e) for e in rows]

    def purge_due(self, before: datetime) -> list[EndedEntry]:
        """Failed, canceled and expired jobs that finished before ``before`` and whose
        orchestration history is not purged yet."""
        rows = self._key_range(ix.PURGE, ix.PURGE + ix.stamp(before), "read purgeable jobs")
        return [EndedEntry.from_entity(e) for e in rows]

    def queue_snapshot(self) -> QueueSnapshot:
        rows = self._key_range(
            ix.QUEUE, ix.prefix_end(ix.QUEUE), "read queue", select=["RowKey", "job_id"]
        )
        return QueueSnapshot.from_entities(rows)

    def job_ids_between(self, first_key: str, last_key: str) -> set[str]:
        """Ids of the jobs whose RowKeys lie in ``[first_key, last_key)``: a key range over job
        rows only (see :func:`shared.domain.ids.newest_first_key` for how they order)."""
        rows = self._key_range(first_key, last_key, "read job ids", select=["job_id"])
        return {str(e["job_id"]) for e in rows}

    def count(self, statuses: Iterable[JobStatus]) -> int:
        """How many jobs are in ``statuses``. Queued and other active statuses come from the
        index (bounded by the active set); anything else scans the job rows (operators only)."""
        wanted = frozenset(statuses)
        if wanted == {JobStatus.QUEUED}:
            return len(self.queue_snapshot())
        if wanted <= ACTIVE_STATUSES:
            return sum(1 for entry in self.active() if entry.status in wanted)
        params = _job_rows_params()
        query = f"{_JOB_ROWS} and " + _any_of("status", "s", [s.value for s in wanted], params)
        with translate_azure_errors("count jobs"):
            return sum(
                1 for _ in self.jobs.query_entities(query, parameters=params, select=["RowKey"])
            )

    def queue_position(self, record: JobRecord) -> int | None:
        return self.queue_positions([record])[record.job_id]

    def queue_positions(self, records: Iterable[JobRecord]) -> dict[str, int | None]:
        """1-based places in the queue (``None`` when not queued): one read of the queue slots
        (at most the queue cap of rows) per call, none when no record is queued."""
        records = list(records)
        positions: dict[str, int | None] = {r.job_id: None for r in records}
        queued = [r for r in records if r.status is JobStatus.QUEUED]
        if not queued:
            return positions
        snapshot = self._queue_for_positions()
        for record in queued:
            positions[record.job_id] = snapshot.position(record.job_id)
        return positions

    def _queue_for_positions(self) -> QueueSnapshot:
        """The queue as read at most ``POSITIONS_MAX_AGE_SECS`` ago and after this process's
        last queue change (a copy read while such a change was being written is not kept)."""
        now = self._clock()
        with self._positions_lock:
            writes, recent = self._queue_writes, self._positions_from
        if recent is not None and recent[0] == writes and now - recent[1] < POSITIONS_MAX_AGE_SECS:
            return recent[2]
        snapshot = self.queue_snapshot()
        with self._positions_lock:
            self._positions_from = (writes, now, snapshot)
        return snapshot

    def list_history(self, job_id: str) -> list[dict[str, Any]]:
        prefix = f"{ix.HISTORY}{job_key(job_id)}~"
        rows = self._key_range(prefix, ix.prefix_end(prefix), "read job history")
        with translate_azure_errors("read job history"):
            legacy = list(
                self.history.query_entities("PartitionKey eq @pk", parameters={"pk": job_id})
            )
        merged = [
            {k: v for k, v in dict(r).items() if k not in ("PartitionKey", "job_id")}
            for r in [*legacy, *rows]
        ]
        return sorted(merged, key=lambda r: r.get("at") or datetime.min.replace(tzinfo=UTC))

    # -- writes ----------------------------------------------------------------------------
    def insert_job(
        self,
        record: JobRecord,
        *,
        actor: str | None = None,
        queue_cap: int | None = None,
        queue: QueueSnapshot | None = None,
    ) -> Inserted:
        """Write a new job row with its index rows and first history row, in one transaction.

        A queued job takes a free queue slot in the same transaction. With ``queue_cap`` only
        slots below the cap exist, so however many submits race, at most ``queue_cap`` jobs are
        queued; :class:`QueueFull` when no slot is free. ``queue`` is a snapshot the caller has
        just read (saves a round trip on the first attempt)."""
        history = ix.history_row(
            record.job_id, None, record.status, "submitted", at=record.created_at, actor=actor
        )
        snapshot = queue
        for _ in range(_MAX_SLOT_ATTEMPTS):
            slot: int | None = None
            if record.status is JobStatus.QUEUED:
                snapshot = snapshot if snapshot is not None else self.queue_snapshot()
                free = snapshot.free_slots(queue_cap)
                if not free:
                    raise QueueFull("the build queue is full")
                # Concurrent submitters read the same snapshot: spread them over the free slots.
                slot = secrets.choice(free)
            rows = index_rows(record, slot)
            ops: list[tuple[Any, ...]] = [("create", record_to_entity(record, queue_slot=slot))]
            ops += [("create", row) for row in rows.values()]
            ops.append(("upsert", history))
            try:
                metas = self._transact(ops, "insert job")
            except _OperationRefused as refused:
                if refused.status == 409 and refused.index == 0:
                    raise AlreadyExists(f"job {record.job_id} exists already") from None
                if refused.status == 409 and slot is not None:
                    snapshot = None  # someone took that slot this instant: look again
                    time.sleep(secrets.randbelow(10) / 1000)
                    continue
                raise ConcurrencyConflict(f"insert job: {refused}") from None
            stored = replace(record, etag=metas[0].get("etag"))
            position = snapshot.position(record.job_id) if snapshot is not None else None
            return Inserted(stored, position)
        raise ConcurrencyConflict("the queue kept changing; gave up")

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        reason: str,
        only_from: Iterable[JobStatus] | None = None,
        **changes: Any,
    ) -> JobRecord:
        """Move a job to ``target`` if the state machine (and ``only_from``) allows it.

        Raises :class:`IllegalTransition` otherwise, with the job's current status in the message.
        """
        allowed_from = frozenset(only_from) if only_from is not None else None

        def mutate(current: JobRecord) -> JobRecord:
            if allowed_from is not None and current.status not in allowed_from:
                raise IllegalTransition(f"job is {current.status.value}, not {target.value}-able")
            if not current.status.can_transition_to(target):
                raise IllegalTransition(
                    f"{current.status.value} -> {target.value} is not an allowed transition"
                )
            return replace(current, status=target, **changes)

        return self._compare_and_swap(job_id, mutate, reason=reason)[1]

    def update(self, job_id: str, mutate: Callable[[JobRecord], JobRecord | None]) -> JobRecord:
        """Apply a status-preserving change (progress, cost, log offset). ``mutate`` returning
        ``None`` means "nothing to change" and skips the write."""

        def guarded(current: JobRecord) -> JobRecord:
            changed = mutate(current)
            if changed is None:
                return current
            if changed.status is not current.status:
                raise IllegalTransition("use transition() to change status")
            return changed

        return self._compare_and_swap(job_id, guarded)[1]

    def reindex(self) -> int:
        """Bring job rows written before the index existed into it (one pass over the job rows;
        an operator runs it once after upgrading). Returns how many rows it indexed."""
        params = _job_rows_params()
        with translate_azure_errors("scan jobs"):
            pending = [
                str(e["job_id"])
                for e in self.jobs.query_entities(
                    _JOB_ROWS, parameters=params, select=["job_id", _INDEXED]
                )
                if not e.get(_INDEXED)
            ]
        for job_id in pending:
            self._compare_and_swap(job_id, lambda job: replace(job), adopt=True)
        return len(pending)

    def _compare_and_swap(
        self,
        job_id: str,
        mutate: Callable[[JobRecord], JobRecord],
        *,
        reason: str | None = None,
        adopt: bool = False,
    ) -> tuple[JobRecord, JobRecord]:
        """Read, mutate, and write the job row with its index changes in one transaction,
        conditional on the ETag read. ``adopt`` forces the write for an unindexed row (reindex)."""
        missing: set[str] = set()
        # Each missing index row costs one more attempt; there are at most a handful per job.
        for _ in range(_MAX_CAS_ATTEMPTS + 8):
            stored = self._read(job_id)
            current = stored.job
            if adopt and stored.indexed:
                return current, current
            changed = mutate(current)
            if changed is current:
                return current, current
            present, slot = self._present_index(stored, changed)
            history = None
            if reason is not None:
                history = ix.history_row(
                    job_id, current.status, changed.status, scrub(reason)[:1024], at=utcnow()
                )
            ops = self._write_plan(stored, changed, slot, history, present, missing)
            try:
                metas = self._transact(ops, "update job")
            except _OperationRefused as refused:
                op, row = ops[refused.index][0], ops[refused.index][1]
                if refused.index == 0 and refused.status == 404:
                    raise NotFound(f"job {job_id}: not found") from None
                if refused.index == 0 and refused.status == 412:
                    continue  # the row changed since we read it
                if refused.status == 404 and op == "delete":
                    # An index row that should be there is not: its absence is the goal anyway.
                    missing.add(str(row["RowKey"]))
                    continue
                if refused.status == 409 and op == "create":
                    continue  # a queue slot picked for an unindexed row was taken meanwhile
                raise ConcurrencyConflict(f"update job {job_id}: {refused}") from None
            changed.etag = metas[0].get("etag")
            return current, changed
        raise ConcurrencyConflict(f"job {job_id} kept changing; gave up")

    def _present_index(
        self, stored: _Stored, changed: JobRecord
    ) -> tuple[dict[str, dict[str, Any] | None], int | None]:
        """The index rows the job has now (``None``: may exist, content unknown) and its queue
        slot after the write.

        An indexed row's rows are exactly ``index_rows`` of it (the invariant). A row without
        ``ix`` was written by code that kept no index, possibly after this code had indexed it
        (a rolling upgrade), so rows of an earlier state may be left: every row it could have is
        a candidate for deletion, found by key (active, canceled, purge) or by reading the queue
        slots (at most the queue cap)."""
        if stored.indexed:
            present: dict[str, dict[str, Any] | None] = dict(
                index_rows(stored.job, stored.queue_slot)
            )
            slot = stored.queue_slot if changed.status is JobStatus.QUEUED else None
            return present, slot
        job = stored.job
        held = [e.slot for e in self.queue_snapshot().entries if e.job_id == job.job_id]
        key = job_key(job.job_id)
        ended = ix.stamp(ix.finished_or_created(job))
        candidates = [
            ix.ACTIVE + key,
            f"{ix.CANCEL_WATCH}{ended}~{key}",
            f"{ix.PURGE}{ended}~{key}",
            *(ix.queue_key(s) for s in held),
        ]
        present = dict.fromkeys(candidates)
        slot = None
        if changed.status is JobStatus.QUEUED:
            # Keep a slot it still holds; else take a free one (above the cap if need be, so
            # the cap holds new submits back until the queue drains below it).
            slot = held[0] if held else secrets.choice(self.queue_snapshot().free_slots(None))
        return present, slot

    @staticmethod
    def _write_plan(
        stored: _Stored,
        changed: JobRecord,
        slot: int | None,
        history: dict[str, Any] | None,
        present: dict[str, dict[str, Any] | None],
        missing: set[str],
    ) -> list[tuple[Any, ...]]:
        ops: list[tuple[Any, ...]] = [
            (
                "update",
                record_to_entity(changed, queue_slot=slot),
                {
                    "mode": UpdateMode.REPLACE,
                    "etag": stored.job.etag,
                    "match_condition": MatchConditions.IfNotModified,
                },
            )
        ]
        after = index_rows(changed, slot)
        for key in sorted(present.keys() - after.keys() - missing):
            ops.append(("delete", {"PartitionKey": JOBS_PARTITION, "RowKey": key}))
        for key, row in after.items():
            if key in present and present[key] == row:
                continue
            if key.startswith(ix.QUEUE) and key not in present:
                ops.append(("create", row))  # a slot is taken, never overwritten
            else:
                ops.append(("upsert", row, {"mode": UpdateMode.REPLACE}))
        if history is not None:
            ops.append(("upsert", history))
        return ops

    def _transact(self, ops: list[tuple[Any, ...]], what: str) -> list[Mapping[str, Any]]:
        """Submit one entity-group transaction. A refused operation (404/409/412) raises
        :class:`_OperationRefused` with its index; anything else goes through the translator."""
        changes_queue = any(str(op[1].get("RowKey", "")).startswith(ix.QUEUE) for op in ops)
        try:
            with translate_azure_errors(what):
                try:
                    return self.jobs.submit_transaction(ops)
                except TableTransactionError as exc:
                    if exc.status_code in (404, 409, 412):
                        raise _OperationRefused(exc.index, exc.status_code) from exc
                    raise
        finally:
            if changes_queue:  # whatever the outcome: the queue may have changed
                with self._positions_lock:
                    self._queue_writes += 1
