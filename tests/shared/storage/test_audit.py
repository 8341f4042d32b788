"""The audit trail: append-only and scrubbed."""

from __future__ import annotations

from datetime import UTC, datetime


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
