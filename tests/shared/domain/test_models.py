"""Golden test of the contract's transition table (models.rs::can_transition_to)."""

from __future__ import annotations

import itertools

from shared.domain.models import JobStatus

ALLOWED = {
    ("queued", "building"),
    ("queued", "failed"),
    ("queued", "canceled"),
    ("building", "deploying"),
    ("building", "failed"),
    ("building", "canceled"),
    ("deploying", "ready"),
    ("deploying", "failed"),
    ("deploying", "canceled"),
    ("ready", "expired"),
}


def test_transition_table_is_exactly_the_contracts() -> None:
    for a, b in itertools.product(JobStatus, JobStatus):
        assert a.can_transition_to(b) == ((a.value, b.value) in ALLOWED), (a, b)


def test_terminal_statuses() -> None:
    assert {s.value for s in JobStatus if s.is_terminal} == {
        "ready",
        "failed",
        "canceled",
        "expired",
    }
