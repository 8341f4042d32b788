"""Accepting a job against Azurite: storage round trips counted at the SDK transport, the exact
queue cap under concurrent submits, and nothing left behind by a refused or failed submit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from devhost.http_host import FunctionHost
from shared.domain.ids import new_job_id
from shared.domain.models import JobRecord, JobStatus
from shared.errors import TransientBackendError
from shared.pipeline import submission
from shared.services import use_services
from tests.conftest import Api, make_settings
from tests.conftest import submission as body_of
from tests.seed_jobs import seed_finished_jobs
from tests.storage_meter import metered_services


@pytest.fixture
def metered(azurite, tmp_path, durable_host):
    svc, meter = metered_services(make_settings(azurite, tmp_path))
    try:
        yield svc, meter, Api(FunctionHost(function_app.app, durable_host.binding))
    finally:
        use_services(None)


def post(api: Api, **overrides):
    return api.call("POST", "/v1/jobs", body=body_of(**overrides))


def leftovers(svc) -> dict[str, int]:
    """Rows and objects a submit can leave: claims, job rows and queue slots, input blobs."""
    job_rows, _ = svc.jobs.list_jobs(page_size=1000)
    return {
        "idempotency": len(list(svc.claims.idempotency.list_entities())),
        "app_names": len(list(svc.claims.app_names.list_entities())),
        "jobs": len(job_rows),
        "queued": svc.jobs.count([JobStatus.QUEUED]),
        "blobs": len(list(svc.blobs.container.list_blobs(name_starts_with="jobs/"))),
    }


def queued_job() -> JobRecord:
    return JobRecord(
        job_id=new_job_id(),
        app_name=f"seed-{new_job_id()[-6:].lower()}",
        owner="seed",
        request_hash="h",
        created_at=datetime.now(UTC),
        ttl_hours=24,
    )


def test_submit_takes_6_round_trips_and_a_replay_at_most_3(metered) -> None:
    svc, meter, api = metered
    with meter.measure() as new:
        status, accepted, _ = post(api)
    assert status == 202 and accepted["queue_position"] == 1
    assert new.round_trips == 6, new.describe()
    assert (new.by_service("table"), new.by_service("blob")) == (5, 1)  # SPEC+TASKS: one blob
    with meter.measure() as replay:
        status, again, _ = post(api)
    assert status == 202 and again == accepted
    assert replay.round_trips == 3, replay.describe()  # key, job row, queue (still queued)
    svc.jobs.transition(accepted["job_id"], JobStatus.BUILDING, reason="slot")
    with meter.measure() as replay_building:
        status, again, _ = post(api)
    assert status == 202 and again["queue_position"] is None
    assert replay_building.round_trips == 2, replay_building.describe()


def test_submit_reads_do_not_grow_with_finished_jobs(metered) -> None:
    svc, meter, api = metered

    def submit_and_replay(name: str) -> tuple[int, int, int, int]:
        with meter.measure() as new:
            status, accepted, _ = post(api, app_name=name, idempotency_key=name)
        assert status == 202
        with meter.measure() as replay:
            assert post(api, app_name=name, idempotency_key=name)[1] == accepted
        # Take the job out of the queue so both rounds start from the same active set.
        svc.jobs.transition(accepted["job_id"], JobStatus.FAILED, reason="test")
        return new.round_trips, new.entities_read, replay.round_trips, replay.entities_read

    before = submit_and_replay("first")
    seed_finished_jobs(svc.jobs, 1000, now=datetime.now(UTC))
    after = submit_and_replay("second")
    # New: nothing to read back (no key, empty queue). Replay: the key, the job, its queue row.
    assert before == after == (6, 0, 3, 3)


def test_the_queue_cap_is_exact_under_concurrent_submits(metered) -> None:
    svc, _, api = metered
    cap = svc.settings.queue_cap
    for _ in range(cap - 3):
        svc.jobs.insert_job(queued_job(), queue_cap=cap)
    assert leftovers(svc) == {
        "idempotency": 0,
        "app_names": 0,
        "jobs": cap - 3,
        "queued": cap - 3,
        "blobs": 0,
    }
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(20)

    def one(i: int) -> None:
        barrier.wait()
        status, reply, _ = post(api, app_name=f"race-{i}", idempotency_key=f"race-{i}")
        results.append((status, reply.get("error", "")))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(202, "")] * 3 + [(429, "queue_full")] * 17
    # The refused ones left nothing: 3 claims of each kind, 3 jobs' inputs (one blob each), a
    # full queue.
    assert leftovers(svc) == {
        "idempotency": 3,
        "app_names": 3,
        "jobs": cap,
        "queued": cap,
        "blobs": 3,
    }


def test_a_failed_submit_takes_back_its_key_name_and_inputs(metered, monkeypatch) -> None:
    svc, _, api = metered
    real_put = svc.blobs.put_inputs

    def half_stored(job_id: str, **docs: str) -> None:
        real_put(job_id, **docs)  # the inputs written, then the connection drops
        raise TransientBackendError("store job inputs: connection failed")

    monkeypatch.setattr(svc.blobs, "put_inputs", half_stored)
    status, body, _ = post(api, spec_md="# first try\n")
    assert status == 503 and body["error"] == "unavailable"
    assert leftovers(svc) == {k: 0 for k in ("idempotency", "app_names", "jobs", "queued", "blobs")}
    monkeypatch.undo()
    status, accepted, _ = post(api, spec_md="# corrected\n")  # same key, different body
    assert status == 202, accepted
    assert svc.blobs.read_inputs(accepted["job_id"])[0] == "# corrected\n"


def test_a_transaction_that_failed_before_committing_is_taken_back(metered, monkeypatch) -> None:
    svc, _, api = metered

    def lost(*args, **kwargs):
        raise TransientBackendError("insert job: HTTP 503")

    monkeypatch.setattr(svc.jobs, "insert_job", lost)
    assert post(api)[0] == 503
    assert leftovers(svc)["blobs"] == 0 and leftovers(svc)["idempotency"] == 0
    monkeypatch.undo()
    assert post(api, spec_md="# corrected\n")[0] == 202


def test_a_transaction_that_committed_behind_a_lost_reply_is_kept(metered, monkeypatch) -> None:
    svc, _, api = metered
    real_insert = svc.jobs.insert_job

    def committed_then_lost(*args, **kwargs):
        real_insert(*args, **kwargs)
        raise TransientBackendError("insert job: connection failed")

    monkeypatch.setattr(svc.jobs, "insert_job", committed_then_lost)
    status, accepted, _ = post(api)
    assert status == 202 and accepted["queue_position"] == 1
    monkeypatch.undo()
    assert post(api)[1] == accepted
    assert leftovers(svc) == {
        "idempotency": 1,
        "app_names": 1,
        "jobs": 1,
        "queued": 1,
        "blobs": 1,
    }


def test_a_claim_left_by_a_dead_submit_is_resumable(metered, monkeypatch) -> None:
    """A submitter that died after claiming the key created no job: once the claim is stale a
    resubmit is accepted even with a corrected body; before that it is told to retry."""
    svc, _, api = metered
    monkeypatch.setattr(submission, "_WAIT_FOR_PEER_SECS", 0.2)
    body = body_of()
    svc.claims.claim_idempotency(
        body["owner"], body["idempotency_key"], job_id=new_job_id(), request_hash="old body"
    )
    status, reply, _ = post(api, spec_md="# corrected\n")
    assert status == 409 and reply["error"] == "idempotency_in_progress"
    row = next(iter(svc.claims.idempotency.list_entities()))
    row["claimed_at"] = datetime.now(UTC) - timedelta(minutes=2)
    svc.claims.idempotency.upsert_entity(row)
    status, accepted, _ = post(api, spec_md="# corrected\n")
    assert status == 202, accepted
    status, reply, _ = post(api, spec_md="# something else\n")  # now a job exists for the key
    assert status == 409 and reply["error"] == "idempotency_conflict"
