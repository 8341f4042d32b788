"""Job state, claims, tokens and blobs against Azurite (real SDK, real wire)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.ids import new_job_id
from shared.domain.models import JobRecord, JobStatus
from shared.errors import IllegalTransition, NotFound


def new_job(**overrides) -> JobRecord:
    base = {
        "job_id": new_job_id(),
        "app_name": "app",
        "owner": "alice",
        "request_hash": "h",
        "created_at": datetime.now(UTC),
        "ttl_hours": 24,
    }
    base.update(overrides)
    return JobRecord(**base)


def test_job_round_trips_through_the_table(services) -> None:
    job = new_job(org_slug="acme", quality={"audit": "pass", "findings": {"high": 1}})
    services.jobs.insert_job(job)
    loaded = services.jobs.get_job(job.job_id)
    assert loaded.etag
    assert replace(loaded, etag=None) == replace(job, created_at=loaded.created_at)
    assert abs(loaded.created_at - job.created_at) < timedelta(milliseconds=1)
    with pytest.raises(NotFound):
        services.jobs.get_job(new_job_id())


def test_transitions_follow_the_state_machine_and_write_history(services) -> None:
    job = new_job()
    services.jobs.insert_job(job)
    services.jobs.transition(job.job_id, JobStatus.BUILDING, reason="slot")
    with pytest.raises(IllegalTransition):
        services.jobs.transition(job.job_id, JobStatus.READY, reason="skip deploying")
    with pytest.raises(IllegalTransition):
        services.jobs.transition(
            job.job_id, JobStatus.CANCELED, reason="x", only_from=[JobStatus.QUEUED]
        )
    services.jobs.transition(job.job_id, JobStatus.CANCELED, reason="by caller")
    with pytest.raises(IllegalTransition):
        services.jobs.transition(job.job_id, JobStatus.BUILDING, reason="resurrect")
    history = services.jobs.list_history(job.job_id)
    assert [(r["from_status"], r["to_status"]) for r in history] == [
        ("", "queued"),
        ("queued", "building"),
        ("building", "canceled"),
    ]


def test_concurrent_transitions_are_etag_guarded_exactly_one_wins(services) -> None:
    job = new_job()
    services.jobs.insert_job(job)
    services.jobs.transition(job.job_id, JobStatus.BUILDING, reason="slot")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def race(target: JobStatus) -> None:
        barrier.wait()
        try:
            services.jobs.transition(job.job_id, target, reason=f"race {target.value}")
            outcomes.append(target.value)
        except IllegalTransition:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=race, args=(t,)) for t in [JobStatus.CANCELED, JobStatus.FAILED] * 4
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("refused") == 7
    final = services.jobs.get_job(job.job_id).status.value
    assert final in outcomes
    assert len(services.jobs.list_history(job.job_id)) == 3


def test_progress_updates_never_change_status(services) -> None:
    job = new_job()
    services.jobs.insert_job(job)
    with pytest.raises(IllegalTransition):
        services.jobs.update(job.job_id, lambda j: replace(j, status=JobStatus.READY))
    updated = services.jobs.update(job.job_id, lambda j: replace(j, percent=40))
    assert updated.percent == 40 and services.jobs.get_job(job.job_id).percent == 40


def test_listing_is_newest_first_with_a_working_cursor(services) -> None:
    ids = []
    for i in range(7):
        job = new_job(owner="bob" if i % 2 else "alice")
        services.jobs.insert_job(job)
        ids.append(job.job_id)
    seen, cursor = [], None
    while True:
        page, cursor = services.jobs.list_jobs(page_size=3, cursor=cursor)
        seen.extend(j.job_id for j in page)
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bobs, _ = services.jobs.list_jobs(owner="bob", page_size=50)
    assert [j.job_id for j in bobs] == [ids[5], ids[3], ids[1]]
    with pytest.raises(ValueError, match="cursor"):
        services.jobs.list_jobs(cursor="!!!")


def test_queue_position_and_counts(services) -> None:
    jobs = [new_job() for _ in range(3)]
    for job in jobs:
        services.jobs.insert_job(job)
    assert [services.jobs.queue_position(j) for j in jobs] == [1, 2, 3]
    services.jobs.transition(jobs[0].job_id, JobStatus.BUILDING, reason="slot")
    assert services.jobs.queue_position(services.jobs.get_job(jobs[0].job_id)) is None
    assert services.jobs.queue_position(jobs[2]) == 2
    assert services.jobs.count([JobStatus.QUEUED]) == 2
    positions = services.jobs.queue_positions([services.jobs.get_job(j.job_id) for j in jobs])
    assert positions == {jobs[0].job_id: None, jobs[1].job_id: 1, jobs[2].job_id: 2}
    assert services.jobs.count([JobStatus.QUEUED, JobStatus.BUILDING]) == 3


def test_idempotency_claims_are_conditional_inserts(services) -> None:
    claims = services.claims
    first = claims.claim_idempotency("alice", "k/1?#", job_id="fj_A", request_hash="h1")
    second = claims.claim_idempotency("alice", "k/1?#", job_id="fj_B", request_hash="h2")
    assert first.won and not second.won
    assert (second.job_id, second.request_hash) == ("fj_A", "h1")
    assert claims.claim_idempotency("bob", "k/1?#", job_id="fj_C", request_hash="h1").won
    claims.release_idempotency("alice", "k/1?#", first)
    assert claims.claim_idempotency("alice", "k/1?#", job_id="fj_D", request_hash="h").won


def test_app_name_claims_are_per_org(services) -> None:
    claims = services.claims
    assert claims.claim_app_name("shop", "acme", job_id="fj_A") is None
    assert claims.claim_app_name("shop", "acme", job_id="fj_B").job_id == "fj_A"
    assert claims.claim_app_name("shop", "beta", job_id="fj_C") is None
    assert claims.claim_app_name("shop", None, job_id="fj_D") is None
    assert claims.claim_app_name("shop", None, job_id="fj_E").job_id == "fj_D"
    claims.release_app_name("shop", "acme", job_id="fj_B")  # not the holder: no effect
    assert claims.claim_app_name("shop", "acme", job_id="fj_F").job_id == "fj_A"
    assert claims.replace_app_name_holder("shop", "acme", stale_job_id="fj_A", job_id="fj_F")
    claims.release_app_name("shop", "acme", job_id="fj_F")
    assert claims.claim_app_name("shop", "acme", job_id="fj_G") is None


def test_tokens_are_stored_hashed_and_revocable(services) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    token = services.tokens.mint("fj_A", expires_at=expires)
    assert token.startswith("fb_") and len(token) == 29
    assert services.tokens.verify(token).job_id == "fj_A"
    rows = list(services.tokens.table.list_entities())
    assert rows and all(token not in str(dict(r)) for r in rows)
    assert services.tokens.verify("fb_" + "0" * 26) is None
    assert services.tokens.verify(token, now=expires + timedelta(seconds=1)) is None
    assert services.tokens.revoke_job("fj_A") == 1
    assert services.tokens.revoke_job("fj_A") == 0
    assert services.tokens.verify(token) is None


def test_log_appends_are_idempotent_by_position(services) -> None:
    blobs = services.blobs
    blobs.ensure_log("fj_A")
    blobs.ensure_log("fj_A")  # second create is a no-op, not a truncation
    assert blobs.append_log("fj_A", b"one\n", at_offset=0) == 4
    # A retried append of the same bytes at the same position does not duplicate them.
    assert blobs.append_log("fj_A", b"one\n", at_offset=0) == 4
    assert blobs.append_log("fj_A", b"two\n", at_offset=4) == 8
    assert blobs.read_log("fj_A") == b"one\ntwo\n"
    assert blobs.read_log("fj_A", offset=4) == b"two\n"
    assert blobs.read_log("fj_A", offset=8) == b""
    assert blobs.read_log("fj_unknown") == b""


def test_signed_urls_are_read_only_and_scoped_to_one_blob(services) -> None:
    blobs = services.blobs
    blobs.put_artifact("fj_A", b"tarball")
    url = blobs.signed_url("fj_A", "output/source.tar.gz", permission="r", ttl_secs=300)
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.read() == b"tarball"
    put = urllib.request.Request(
        url, data=b"evil", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=5)
    assert refused.value.code == 403
    refused.value.close()
    other = url.replace("fj_A/output/source.tar.gz", "fj_A/input/SPEC.md")
    with pytest.raises(urllib.error.HTTPError) as wrong_blob:
        urllib.request.urlopen(other, timeout=5)
    assert wrong_blob.value.code == 403
    wrong_blob.value.close()


def test_audit_is_append_only_and_scrubbed(services) -> None:
    services.audit.record(
        "job.test",
        job_id="fj_A",
        token="fb_01JSECRETSECRETSECRETSECRE",
        note="see https://x/blob?sv=1&sig=abcdef&se=2",
    )
    services.audit.record("job.test", job_id="fj_B")
    lines = services.audit.read_day(datetime.now(UTC))
    assert [line["job_id"] for line in lines] == ["fj_A", "fj_B"]
    text = str(lines)
    assert "SECRET" not in text and "abcdef" not in text


def test_without_an_account_key_urls_are_user_delegation_sas() -> None:
    """Under managed identity there is no key: signing asks the service for a delegation key."""
    from azure.core.credentials import AccessToken
    from azure.storage.blob import BlobServiceClient

    from shared.errors import FoundryError
    from shared.storage.job_blobs import JobBlobs
    from tests.azurite import free_port

    class Token:
        def get_token(self, *scopes, **kwargs):
            return AccessToken("not-a-real-token", 4102444800)

    seen = []
    # Token credentials need HTTPS; nothing listens on this loopback port, the request is the point.
    endpoint = f"https://127.0.0.1:{free_port()}/devstoreaccount1"
    client = BlobServiceClient(
        endpoint,
        credential=Token(),
        retry_total=0,
        raw_request_hook=lambda r: seen.append(r.http_request.url),
    )
    with pytest.raises(FoundryError):
        JobBlobs(client, container="c").signed_url("fj_A", "output/x", permission="r", ttl_secs=60)
    assert any("comp=userdelegationkey" in url for url in seen)


def test_build_slots_are_exact_under_concurrent_claims(services) -> None:
    """Twelve queued jobs claim at once with three slots: exactly three start building."""
    from shared.pipeline import steps

    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "max_concurrent_builds": 3}
    )
    jobs = [new_job(app_name=f"app-{i}") for i in range(12)]
    for job in jobs:
        services.jobs.insert_job(job)
    barrier = threading.Barrier(len(jobs))
    results: dict[str, bool] = {}

    def claim(job_id: str) -> None:
        barrier.wait()
        results[job_id] = steps.claim_build_slot(services, job_id).done

    threads = [threading.Thread(target=claim, args=(j.job_id,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 3
    assert services.jobs.count([JobStatus.BUILDING]) == 3
    # A finished holder frees its slot without any explicit release.
    winner = next(j for j, ok in results.items() if ok)
    services.jobs.transition(winner, JobStatus.FAILED, reason="test")
    waiting = next(j for j, ok in results.items() if not ok)
    assert steps.claim_build_slot(services, waiting).done
    assert steps.claim_build_slot(services, waiting).done  # holding it is idempotent


def test_an_app_name_released_mid_claim_is_taken_not_a_404(services, monkeypatch) -> None:
    claims = services.claims
    assert claims.claim_app_name("shop", "acme", job_id="fj_A") is None
    real_get = claims.app_names.get_entity
    released = []

    def released_first(*args, **kwargs):  # the holder lets go between our insert and our read
        if not released:
            released.append(True)
            claims.app_names.delete_entity("acme", "shop")
        return real_get(*args, **kwargs)

    monkeypatch.setattr(claims.app_names, "get_entity", released_first)
    assert claims.claim_app_name("shop", "acme", job_id="fj_B") is None
    monkeypatch.undo()
    assert claims.claim_app_name("shop", "acme", job_id="fj_C").job_id == "fj_B"
