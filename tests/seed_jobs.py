"""Seeds many finished jobs quickly, laid out exactly as the service leaves them (job row, index
rows, three history rows), in entity-group transactions of up to 100 rows."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from ulid import ULID

from shared.domain.models import CLEANED_PHASE, PURGED_PHASE, JobRecord, JobStatus
from shared.storage import job_index as ix
from shared.storage.job_store import JobStore, record_to_entity

_BATCH = 100
_BATCH_TIMEOUT_SECS = 300
_ENDINGS = (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED)


def finished_job(now: datetime, rng: random.Random, *, recent: bool) -> JobRecord:
    """A job that ended ``1..29`` days ago (history not purged yet) when ``recent``, else
    ``31..365`` days ago (purged)."""
    age = timedelta(days=rng.uniform(1, 29) if recent else rng.uniform(31, 365))
    created = now - age - timedelta(minutes=rng.uniform(2, 60))
    ending = rng.choice(_ENDINGS)
    phase = PURGED_PHASE if not recent else (CLEANED_PHASE if ending is JobStatus.CANCELED else "x")
    return JobRecord(
        job_id=f"fj_{ULID.from_datetime(created)}",
        app_name=f"app-{rng.randrange(10**6)}",
        owner=f"owner-{rng.randrange(50)}",
        request_hash="seeded",
        created_at=created,
        ttl_hours=24,
        org_slug="seed",
        status=ending,
        percent=100,
        phase=phase,
        started_at=created + timedelta(seconds=5),
        finished_at=now - age,
    )


def rows_of(job: JobRecord, *, history: bool) -> list[dict[str, Any]]:
    assert job.finished_at is not None and job.started_at is not None
    rows = [record_to_entity(job), *ix.index_rows(job, None).values()]
    if not history:
        return rows
    rows.append(ix.history_row(job.job_id, None, JobStatus.QUEUED, "submitted", at=job.created_at))
    rows.append(
        ix.history_row(job.job_id, JobStatus.QUEUED, JobStatus.BUILDING, "slot", at=job.started_at)
    )
    rows.append(
        ix.history_row(job.job_id, JobStatus.BUILDING, job.status, "end", at=job.finished_at)
    )
    return rows


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    batch: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        batch.append(("upsert", row))
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def finished_job_rows(
    count: int,
    *,
    now: datetime,
    recent_share: float = 0.1,
    seed: int = 7,
    history: bool = False,
) -> Iterator[dict[str, Any]]:
    """The rows of ``count`` finished jobs: ``recent_share`` of them ended within the history
    retention (so they have a ``~p~`` row, not yet due), the rest were purged long ago."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    for _ in range(count):
        job = finished_job(now, rng, recent=rng.random() < recent_share)
        yield from rows_of(job, history=history)


def seed_finished_jobs(
    store: JobStore,
    count: int,
    *,
    now: datetime,
    recent_share: float = 0.1,
    seed: int = 7,
    history: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``count`` finished jobs through entity-group transactions (every row is in the
    ``job`` partition); returns how many rows that took. History rows (three per job) are
    optional: no hot path reads them, and Azurite takes ~3 ms per row. ``progress`` hears the
    rows written so far after each transaction."""
    rows = finished_job_rows(count, now=now, recent_share=recent_share, seed=seed, history=history)
    written = 0
    # Sequential: Azurite executes one transaction at a time anyway.
    for batch in _batches(rows):
        # Azurite slows down as the table grows: allow a batch far more than the service's
        # short storage read timeout.
        written += len(store.jobs.submit_transaction(batch, read_timeout=_BATCH_TIMEOUT_SECS))
        if progress is not None:
            progress(written)
    return written
