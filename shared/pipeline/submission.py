"""Accepting a job: idempotency, app-name uniqueness and the queue cap, all without
check-then-act races (conditional inserts in Table storage)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.domain.ids import new_job_id
from shared.domain.models import JobRecord, JobStatus
from shared.domain.validation import SubmitRequest, request_hash
from shared.errors import (
    AppNameConflict,
    IdempotencyConflict,
    IdempotencyInProgress,
    QueueFull,
    Refused,
)
from shared.services import Services
from shared.storage.claims import STALE_CLAIM_AFTER, IdempotencyClaim

_WAIT_FOR_PEER_SECS = 5.0
_PEER_POLL_SECS = 0.05


@dataclass(frozen=True)
class SubmitOutcome:
    job: JobRecord
    created: bool


def submit_job(svc: Services, req: SubmitRequest, *, actor: str) -> SubmitOutcome:
    ttl = svc.settings.clamp_ttl(req.preview_ttl_hours)
    fingerprint = request_hash(req, ttl)
    job_id = new_job_id()
    claim = svc.claims.claim_idempotency(
        req.owner, req.idempotency_key, job_id=job_id, request_hash=fingerprint
    )
    if not claim.won:
        replay = _replay(svc, req, claim, fingerprint, job_id)
        if isinstance(replay, SubmitOutcome):
            return replay
        claim = replay
    try:
        _claim_app_name(svc, req, job_id)
    except Refused:
        svc.claims.release_idempotency(req.owner, req.idempotency_key, claim)
        raise
    if svc.jobs.count([JobStatus.QUEUED]) >= svc.settings.queue_cap:
        svc.claims.release_app_name(req.app_name, req.org_slug, job_id=job_id)
        svc.claims.release_idempotency(req.owner, req.idempotency_key, claim)
        raise QueueFull("the build queue is full")
    svc.blobs.put_inputs(job_id, spec_md=req.spec_md, tasks_md=req.tasks_md)
    job = JobRecord(
        job_id=job_id,
        app_name=req.app_name,
        org_slug=req.org_slug,
        owner=req.owner,
        request_hash=fingerprint,
        created_at=datetime.now(UTC),
        ttl_hours=ttl,
    )
    svc.jobs.insert_job(job)
    svc.audit.record(
        "job.submitted",
        job_id=job_id,
        actor=actor,
        app_name=req.app_name,
        org_slug=req.org_slug,
        owner=req.owner,
        ttl_hours=ttl,
    )
    return SubmitOutcome(svc.jobs.get_job(job_id), created=True)


def _replay(
    svc: Services, req: SubmitRequest, claim: IdempotencyClaim, fingerprint: str, job_id: str
) -> SubmitOutcome | IdempotencyClaim:
    """A claim exists. Same body -> the existing job; different body -> 409. If the claimant
    never wrote its job row (it died, or was refused and gave the key back), take the key and
    return our winning claim so the submit proceeds."""
    if claim.request_hash != fingerprint:
        raise IdempotencyConflict("idempotency_key reused with a different request")
    deadline = time.monotonic() + _WAIT_FOR_PEER_SECS
    while True:
        existing = svc.jobs.find_job(claim.job_id)
        if existing is not None:
            return SubmitOutcome(existing, created=False)
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
        if latest is None:  # the claimant was refused (409/429) and gave the key back
            retry = svc.claims.claim_idempotency(
                req.owner, req.idempotency_key, job_id=job_id, request_hash=fingerprint
            )
            if retry.won:
                return retry
            latest = retry
        claim = latest
        if claim.request_hash != fingerprint:
            raise IdempotencyConflict("idempotency_key reused with a different request")


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
