"""Accepting a job: idempotency, app-name uniqueness and the queue cap, all without
check-then-act races (conditional inserts in Table storage).

Storage round trips of a new submit: read the idempotency key, claim it, claim the app name, read
the queue, store SPEC and TASKS, and one transaction for the job row, its queue slot, index and
history rows: 7. A replay of the same body: read the key, read the job, and (only while it is
queued) read the queue: at most 3.

Nothing is left half-done: a submit that is refused or fails before its job row exists deletes
what it wrote (inputs, app name, idempotency key), so a corrected resubmit with the same key is
accepted. If it dies before it can clean up, the claims it left become takeable after
``STALE_CLAIM_AFTER`` and the orphan-input sweep removes its blobs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from shared.domain.ids import new_job_id
from shared.domain.models import JobRecord
from shared.domain.validation import SubmitRequest, request_hash
from shared.errors import (
    AppNameConflict,
    FoundryError,
    IdempotencyConflict,
    IdempotencyInProgress,
    QueueFull,
    Refused,
)
from shared.services import Services
from shared.storage.claims import STALE_CLAIM_AFTER, IdempotencyClaim

log = logging.getLogger(__name__)
_WAIT_FOR_PEER_SECS = 5.0
_PEER_POLL_SECS = 0.05


@dataclass(frozen=True)
class SubmitOutcome:
    job: JobRecord
    created: bool
    queue_position: int | None = None


def submit_job(svc: Services, req: SubmitRequest, *, actor: str) -> SubmitOutcome:
    ttl = svc.settings.clamp_ttl(req.preview_ttl_hours)
    fingerprint = request_hash(req, ttl)
    job_id = new_job_id()
    # Read before inserting: a replay then costs one read here instead of a failed insert and
    # a read, which keeps a replay within 3 round trips.
    claim = svc.claims.get_idempotency(req.owner, req.idempotency_key)
    if claim is None:
        claim = svc.claims.claim_idempotency(
            req.owner, req.idempotency_key, job_id=job_id, request_hash=fingerprint
        )
    if not claim.won:
        settled = _settle_existing_claim(svc, req, claim, fingerprint, job_id)
        if isinstance(settled, SubmitOutcome):
            return settled
        claim = settled
    return _accept(svc, req, claim, job_id=job_id, ttl=ttl, fingerprint=fingerprint, actor=actor)


@dataclass
class _Written:
    """What an accepting submit has (or may have) written, so a refusal or failure can take it
    back."""

    app_name: bool = False
    inputs: bool = False
    job_row: bool = False


def _accept(
    svc: Services,
    req: SubmitRequest,
    claim: IdempotencyClaim,
    *,
    job_id: str,
    ttl: int,
    fingerprint: str,
    actor: str,
) -> SubmitOutcome:
    written = _Written()
    job = JobRecord(
        job_id=job_id,
        app_name=req.app_name,
        org_slug=req.org_slug,
        owner=req.owner,
        request_hash=fingerprint,
        created_at=datetime.now(UTC),
        ttl_hours=ttl,
    )
    cap = svc.settings.queue_cap
    try:
        _claim_app_name(svc, req, job_id)
        written.app_name = True
        queue = svc.jobs.queue_snapshot()
        if not queue.free_slots(cap):
            raise QueueFull("the build queue is full")
        written.inputs = True  # before the call: a failure may come after a blob was stored
        svc.blobs.put_inputs(job_id, spec_md=req.spec_md, tasks_md=req.tasks_md)
        written.job_row = True
        inserted = svc.jobs.insert_job(job, actor=actor, queue_cap=cap, queue=queue)
    except Refused:
        _take_back(svc, req, claim, job_id, written)
        raise
    except Exception as failure:
        if written.job_row:
            # The transaction may have committed although we saw an error (a lost reply). Take
            # back only what provably has no job row. If that cannot be told, leave it: the stale
            # claims become takeable and the orphan-input sweep removes the inputs.
            try:
                created = svc.jobs.find_job(job_id)
            except FoundryError:
                raise failure from None
            if created is not None:
                position = svc.jobs.queue_position(created)
                return SubmitOutcome(created, created=True, queue_position=position)
        _take_back(svc, req, claim, job_id, written)
        raise
    return SubmitOutcome(inserted.job, created=True, queue_position=inserted.queue_position)


def _take_back(
    svc: Services, req: SubmitRequest, claim: IdempotencyClaim, job_id: str, written: _Written
) -> None:
    """Best effort, inputs first and the idempotency key last: until the key is free nobody can
    resubmit, and whatever is left behind here is swept or taken over later."""
    steps: list[tuple[str, Callable[[], None]]] = []
    if written.inputs:
        steps.append(("inputs", partial(svc.blobs.delete_inputs, job_id)))
    if written.app_name:
        release_name = partial(
            svc.claims.release_app_name, req.app_name, req.org_slug, job_id=job_id
        )
        steps.append(("app name", release_name))
    steps.append(
        (
            "idempotency key",
            partial(svc.claims.release_idempotency, req.owner, req.idempotency_key, claim),
        )
    )
    for what, step in steps:
        try:
            step()
        except FoundryError as exc:
            log.warning("could not release the %s of refused submit %s: %s", what, job_id, exc)


def _settle_existing_claim(
    svc: Services, req: SubmitRequest, claim: IdempotencyClaim, fingerprint: str, job_id: str
) -> SubmitOutcome | IdempotencyClaim:
    """Someone holds the key. If their job row exists: same body -> that job (a replay),
    different body -> 409. If it does not, they are still accepting (wait a little), were
    refused and gave the key back (claim it), or died (take the claim over once it is stale,
    whatever the body: no job was created for it). Returns our winning claim to proceed with."""
    deadline = time.monotonic() + _WAIT_FOR_PEER_SECS
    while True:
        existing = svc.jobs.find_job(claim.job_id)
        if existing is not None:
            if claim.request_hash != fingerprint:
                raise IdempotencyConflict("idempotency_key reused with a different request")
            position = svc.jobs.queue_position(existing)
            return SubmitOutcome(existing, created=False, queue_position=position)
        if datetime.now(UTC) - claim.claimed_at > STALE_CLAIM_AFTER:
            taken = svc.claims.take_over_idempotency(
                req.owner, req.idempotency_key, claim, job_id=job_id, request_hash=fingerprint
            )
            if taken is not None:
                return taken
        if time.monotonic() > deadline:
            raise IdempotencyInProgress(
                "a request with this idempotency_key is still being accepted; retry"
            )
        time.sleep(_PEER_POLL_SECS)
        latest = svc.claims.get_idempotency(req.owner, req.idempotency_key)
        if latest is None:  # the claimant was refused and gave the key back
            retry = svc.claims.claim_idempotency(
                req.owner, req.idempotency_key, job_id=job_id, request_hash=fingerprint
            )
            if retry.won:
                return retry
            latest = retry
        claim = latest


def _claim_app_name(svc: Services, req: SubmitRequest, job_id: str) -> None:
    for _ in range(3):
        holder = svc.claims.claim_app_name(req.app_name, req.org_slug, job_id=job_id)
        if holder is None or holder.job_id == job_id:
            return
        held_by = svc.jobs.find_job(holder.job_id)
        if held_by is not None and held_by.status.is_active:
            raise AppNameConflict("app_name is already in use by an in-flight or live build")
        stale = (
            holder.claimed_at is None or datetime.now(UTC) - holder.claimed_at > STALE_CLAIM_AFTER
        )
        if held_by is None and not stale:
            raise AppNameConflict("app_name is being claimed by another request")
        if svc.claims.replace_app_name_holder(
            req.app_name, req.org_slug, stale_job_id=holder.job_id, job_id=job_id
        ):
            return
    raise AppNameConflict("app_name is contended; retry")
