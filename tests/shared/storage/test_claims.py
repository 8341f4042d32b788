"""Idempotency and app-name claims: conditional inserts against Azurite."""

from __future__ import annotations


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
