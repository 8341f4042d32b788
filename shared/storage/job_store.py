"""Job state in Azure Table storage: one current row per job (ETag-guarded) plus a history row per
transition. Every status change is a read, a state-machine check and an ETag-conditional write."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.domain.ids import newest_first_key
from shared.domain.models import JobRecord, JobStatus
from shared.domain.sanitize import scrub
from shared.errors import ConcurrencyConflict, IllegalTransition, NotFound, translate_azure_errors

JOBS_PARTITION = "job"
_JSON_FIELDS = ("quality", "detail")
_MAX_CAS_ATTEMPTS = 8


def utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def record_to_entity(record: JobRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": JOBS_PARTITION,
        "RowKey": newest_first_key(record.job_id),
    }
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


def _status_query(statuses: Iterable[JobStatus]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"pk": JOBS_PARTITION}
    clause = _any_of("status", "s", [s.value for s in statuses], params)
    return f"PartitionKey eq @pk and {clause}", params


class JobStore:
    """Typed access to the ``<prefix>jobs`` and ``<prefix>jobhistory`` tables."""

    def __init__(self, service: TableServiceClient, *, prefix: str) -> None:
        self._service = service
        self.jobs: TableClient = service.get_table_client(f"{prefix}jobs")
        self.history: TableClient = service.get_table_client(f"{prefix}jobhistory")

    def create_tables(self) -> None:
        for table in (self.jobs, self.history):
            with translate_azure_errors(f"create table {table.table_name}"):
                self._service.create_table_if_not_exists(table.table_name)

    # -- reads -----------------------------------------------------------------------------
    def get_job(self, job_id: str) -> JobRecord:
        with translate_azure_errors("read job"):
            entity = self.jobs.get_entity(JOBS_PARTITION, newest_first_key(job_id))
        return entity_to_record(entity)

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
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": JOBS_PARTITION}
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
        """Jobs in ``statuses``, optionally narrowed server-side so periodic sweeps stay cheap
        however many finished jobs the table holds."""
        query, params = _status_query(statuses)
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

    def count(self, statuses: Iterable[JobStatus]) -> int:
        query, params = _status_query(statuses)
        with translate_azure_errors("count jobs"):
            return sum(
                1 for _ in self.jobs.query_entities(query, parameters=params, select=["RowKey"])
            )

    def queue_position(self, record: JobRecord) -> int | None:
        return self.queue_positions([record])[record.job_id]

    def queue_positions(self, records: Iterable[JobRecord]) -> dict[str, int | None]:
        """1-based places in the queue (``None`` when not queued), with one query per call."""
        records = list(records)
        positions: dict[str, int | None] = {r.job_id: None for r in records}
        queued = [r for r in records if r.status is JobStatus.QUEUED]
        if not queued:
            return positions
        query = "PartitionKey eq @pk and status eq @st"
        params = {"pk": JOBS_PARTITION, "st": JobStatus.QUEUED.value}
        with translate_azure_errors("queue position"):
            keys = [
                e["RowKey"]
                for e in self.jobs.query_entities(query, parameters=params, select=["RowKey"])
            ]
        for record in queued:
            # Newer jobs have smaller RowKeys: those ahead of a job have larger ones.
            mine = newest_first_key(record.job_id)
            positions[record.job_id] = 1 + sum(1 for key in keys if key > mine)
        return positions

    def list_history(self, job_id: str) -> list[dict[str, Any]]:
        with translate_azure_errors("read job history"):
            rows = self.history.query_entities("PartitionKey eq @pk", parameters={"pk": job_id})
            return [{k: v for k, v in dict(r).items() if k not in ("PartitionKey",)} for r in rows]

    # -- writes ----------------------------------------------------------------------------
    def insert_job(self, record: JobRecord) -> None:
        with translate_azure_errors("insert job"):
            self.jobs.create_entity(record_to_entity(record))
        self._write_history(record.job_id, None, record.status, "submitted")

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

        before, after = self._compare_and_swap(job_id, mutate)
        self._write_history(job_id, before.status, after.status, reason)
        return after

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

    def _compare_and_swap(
        self, job_id: str, mutate: Callable[[JobRecord], JobRecord]
    ) -> tuple[JobRecord, JobRecord]:
        for _ in range(_MAX_CAS_ATTEMPTS):
            current = self.get_job(job_id)
            changed = mutate(current)
            if changed is current:
                return current, current
            try:
                with translate_azure_errors("update job"):
                    meta = self.jobs.update_entity(
                        record_to_entity(changed),
                        mode=UpdateMode.REPLACE,
                        etag=current.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except ConcurrencyConflict:
                continue
            changed.etag = meta.get("etag")
            return current, changed
        raise ConcurrencyConflict(f"job {job_id} kept changing; gave up after {_MAX_CAS_ATTEMPTS}")

    def _write_history(
        self, job_id: str, before: JobStatus | None, after: JobStatus, reason: str
    ) -> None:
        now = utcnow()
        row = {
            "PartitionKey": job_id,
            "RowKey": f"{now:%Y%m%dT%H%M%S%f}-{after.value}",
            "from_status": before.value if before else "",
            "to_status": after.value,
            "reason": scrub(reason)[:1024],
            "at": now,
        }
        with translate_azure_errors("write job history"):
            self.history.upsert_entity(row)
