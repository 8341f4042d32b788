"""Per-job proxy tokens: stored hashed, revocable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


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
