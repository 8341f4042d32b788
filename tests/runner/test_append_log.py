"""Appending to a job's log blob through its SAS URL (Azurite): exactly once per piece, within the
blob's block budget, and without losing bytes while storage is unreachable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.append_log import AppendLog, LogFull
from runner.follower import LogFollower
from runner.scrub import Scrubber
from runner.storage import sas_blob_client
from shared.storage.job_blobs import JobBlobs, builder_grant
from tests.azurite import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stream_log(blobs: JobBlobs, job_id: str, **kwargs) -> AppendLog:
    url = json.loads(builder_grant(blobs, job_id, ttl_secs=300))["stream_log"]
    log = AppendLog(sas_blob_client(url), content_type="application/x-ndjson", **kwargs)
    log.open()
    return log


def test_open_never_truncates_and_appends_continue_at_the_end(job_blobs: JobBlobs) -> None:
    job_blobs.ensure_log("fj_A")
    job_blobs.append_log("fj_A", b"earlier\n", at_offset=0)
    log = stream_log(job_blobs, "fj_A")
    assert (log.length, log.blocks) == (8, 1)
    log.append(b"mine\n")
    assert job_blobs.read_log("fj_A") == b"earlier\nmine\n"
    with pytest.raises(ValueError, match="at most"):
        log.append(b"x" * (log.max_block_bytes + 1))


def test_a_foreign_append_moves_our_position_without_losing_our_bytes(
    job_blobs: JobBlobs,
) -> None:
    log = stream_log(job_blobs, "fj_A")
    log.append(b"one\n")
    job_blobs.append_log("fj_A", b"someone else\n", at_offset=4)
    log.append(b"two\n")
    assert job_blobs.read_log("fj_A") == b"one\nsomeone else\ntwo\n"
    assert log.reconciled == 0


def test_the_block_budget_is_kept_for_the_final_flush(job_blobs: JobBlobs, tmp_path) -> None:
    log = stream_log(job_blobs, "fj_A", max_blocks=4)
    source = tmp_path / "stream.jsonl"
    clock = Clock()
    follower = LogFollower(
        source, log, Scrubber([]), flush_interval=0.25, flush_bytes=1 << 20, clock=clock
    )
    for n in range(10):
        with source.open("a") as fh:
            fh.write(f"line {n}\n")
        follower.pump()
        clock.now += 1
    # Three blocks went out while the build ran; the fourth, last one waits for its end.
    assert log.blocks == 3
    assert b"line 9" not in job_blobs.read_log("fj_A")
    follower.pump(final=True)
    assert job_blobs.read_log("fj_A") == b"".join(b"line %d\n" % n for n in range(10))
    assert log.full is False and log.blocks == 4
    with pytest.raises(LogFull):
        log.append(b"more\n")
    with source.open("a") as fh:
        fh.write("after the end\n")
    follower.pump(final=True)
    assert follower.dropped_bytes == len("after the end\n")
    assert b"after the end" not in job_blobs.read_log("fj_A")


def test_an_unreachable_store_delays_lines_but_loses_none(job_blobs: JobBlobs, tmp_path) -> None:
    log = stream_log(job_blobs, "fj_A")
    good = log.client
    dead = sas_blob_client(
        f"http://127.0.0.1:{free_port()}/devstoreaccount1/c/jobs/fj_A/logs/stream.jsonl?sig=x",
        retry_total=0,
    )
    source: Path = tmp_path / "stream.jsonl"
    source.write_text("a\nb\n")
    clock = Clock()
    follower = LogFollower(
        source, log, Scrubber([]), flush_interval=0.25, flush_bytes=1 << 20, clock=clock
    )
    log.client = dead
    follower.pump()  # first sight of the bytes: they wait for the flush interval
    clock.now += 1
    follower.pump()
    assert follower.position == 0 and follower.failures == 1
    assert follower.retry_at > clock.now
    log.client = good
    follower.pump()  # still backing off
    assert follower.position == 0
    clock.now = follower.retry_at
    follower.pump()
    assert job_blobs.read_log("fj_A") == b"a\nb\n"
    assert follower.uploaded_bytes == 4
