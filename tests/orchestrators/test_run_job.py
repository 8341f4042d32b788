"""run_job through the SDK's real replay engine (devhost.Driver), activities stubbed.

Every test runs under replay schema V1 and V3; UserWarnings are errors, and the driver turns
the SDK's "duplicate Task completion" warning for numeric ids into a failure (id drift)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import function_app
from activities import names
from devhost import history as h
from devhost.driver import Driver, DriverError
from orchestrators import run_job
from orchestrators.state import RunState
from shared.domain.models import StepResult

JOB = "fj_01JTESTTESTTESTTESTTESTTES"
OK = StepResult().to_dict()
WAIT = StepResult(done=False).to_dict()
LIMITS = {
    "build_timeout_secs": 3600,
    "image_timeout_secs": 600,
    "deploy_timeout_secs": 600,
    "poll_max_secs": 30,
}


class Stubs:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.calls: list[str] = []
        self.payloads: dict[str, list[Any]] = {}
        self.behaviour: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            names.CLAIM_BUILD_SLOT: lambda p: OK,
            names.START_BUILD: lambda p: StepResult(data=LIMITS).to_dict(),
            names.CHECK_BUILD: lambda p: OK,
            names.STOP_BUILD_FOR_TIMEOUT: lambda p: StepResult.failure(
                "build_timeout", "build exceeded the 3600s wall-clock timeout"
            ).to_dict(),
            names.START_IMAGE: lambda p: OK,
            names.CHECK_IMAGE: lambda p: StepResult(data={"image_ref": "img:1"}).to_dict(),
            names.START_PREVIEW: lambda p: OK,
            names.CHECK_PREVIEW: lambda p: StepResult(
                data={"preview_url": "https://app.acme.example"}
            ).to_dict(),
            names.FINALIZE_READY: lambda p: OK,
            names.FAIL_JOB: lambda p: OK,
            names.COMPENSATE_CANCEL: lambda p: OK,
        }
        for name in self.behaviour:
            driver.activities[name] = self._make(name)

    def _make(self, name: str) -> Callable[[Any], Any]:
        def activity(payload: Any) -> Any:
            self.calls.append(name)
            self.payloads.setdefault(name, []).append(payload)
            return self.behaviour[name](payload)

        return activity

    def sequence(self, name: str, *results: dict[str, Any]) -> None:
        queue = list(results)
        self.behaviour[name] = lambda p: queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def driver(schema: int) -> Driver:
    return Driver(function_app.app, schema=schema)


@pytest.fixture
def stubs(driver: Driver) -> Stubs:
    return Stubs(driver)


def start(driver: Driver) -> None:
    driver.start_new(run_job.NAME, JOB, RunState(JOB).to_dict())


def test_happy_path_runs_every_step_in_order(driver: Driver, stubs: Stubs) -> None:
    stubs.sequence(names.CHECK_BUILD, WAIT, WAIT, WAIT, OK)
    start(driver)
    began = driver.now()
    inst = driver.run_to_completion(JOB)
    assert inst.status == "Completed"
    assert inst.output == {
        "job_id": JOB,
        "status": "ready",
        "preview_url": "https://app.acme.example",
    }
    assert stubs.calls == [
        names.CLAIM_BUILD_SLOT,
        names.START_BUILD,
        *[names.CHECK_BUILD] * 4,
        names.START_IMAGE,
        names.CHECK_IMAGE,
        names.START_PREVIEW,
        names.CHECK_PREVIEW,
        names.FINALIZE_READY,
    ]
    # Three waits with backoff 3 s, 4 s, 6 s on durable timers (no busy loop).
    assert driver.now() - began == timedelta(seconds=3 + 4 + 6)
    phases = [s["phase"] for s in inst.custom_status_log]
    assert phases[0] == "slot" and phases[-1] == "ready"
    assert {
        "build",
        "build_wait",
        "image",
        "image_wait",
        "preview",
        "preview_wait",
        "finalize",
    } <= set(phases)
    assert stubs.payloads[names.START_PREVIEW] == [{"job_id": JOB, "image_ref": "img:1"}]


def test_transient_failures_are_retried_with_durable_retry_timers(
    driver: Driver, stubs: Stubs
) -> None:
    attempts = []

    def hook(name: str, payload: Any, attempt: int) -> None:
        if name == names.START_BUILD:
            attempts.append(attempt)
            if attempt < 3:
                raise RuntimeError("HTTP 503 from ARM")

    driver.activity_hook = hook
    start(driver)
    began = driver.now()
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "ready"
    assert attempts == [1, 2, 3]
    assert driver.now() - began >= timedelta(seconds=2 * 5)
    assert names.FAIL_JOB not in stubs.calls


def test_exhausted_retries_fail_the_job_with_internal_error(driver: Driver, stubs: Stubs) -> None:
    def hook(name: str, payload: Any, attempt: int) -> None:
        if name == names.START_BUILD:
            raise RuntimeError("storage down")

    driver.activity_hook = hook
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.status == "Completed"
    assert inst.output == {"job_id": JOB, "status": "failed", "code": "internal_error"}
    attempts = [a for n, _, a in inst.activity_calls if n == names.START_BUILD]
    assert attempts == [1, 2, 3, 4, 5]
    (failure,) = stubs.payloads[names.FAIL_JOB]
    assert failure["code"] == "internal_error" and "start_build" in failure["message"]
    assert "storage down" in failure["message"]


def test_expected_failures_are_values_not_retries(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: StepResult.failure(
        "build_crashed", "no terminal report in the build stream"
    ).to_dict()
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "build_crashed"
    assert stubs.calls.count(names.CHECK_BUILD) == 1
    assert stubs.payloads[names.FAIL_JOB][0]["message"] == "no terminal report in the build stream"
    assert names.START_IMAGE not in stubs.calls


def test_a_canceled_row_seen_by_an_activity_compensates(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.START_IMAGE] = lambda p: StepResult.was_canceled().to_dict()
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.output == {"job_id": JOB, "status": "canceled"}
    assert stubs.calls[-1] == names.COMPENSATE_CANCEL
    assert names.FAIL_JOB not in stubs.calls


def test_cancel_event_interrupts_a_wait_and_cancels_its_timer(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    start(driver)
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("round", 0) >= 2)
    checks = stubs.calls.count(names.CHECK_BUILD)
    driver.raise_event(JOB, run_job.CANCEL_EVENT, {"by": "test"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "canceled"
    assert stubs.calls.count(names.CHECK_BUILD) == checks
    assert stubs.calls[-1] == names.COMPENSATE_CANCEL
    assert not inst.timers  # the pending poll timer was cancelled, not left to fire


def test_cancel_raised_before_the_orchestrator_waits_for_it_is_not_lost(
    driver: Driver, stubs: Stubs
) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    start(driver)  # claim_build_slot is scheduled but has not run yet
    driver.raise_event(JOB, run_job.CANCEL_EVENT, {"by": "test"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "canceled"
    assert stubs.calls[-1] == names.COMPENSATE_CANCEL


def test_long_builds_continue_as_new_so_history_stays_bounded(schema: int) -> None:
    def run(polls: int) -> tuple[int, int]:
        driver = Driver(function_app.app, schema=schema)
        stubs = Stubs(driver)
        stubs.sequence(names.CHECK_BUILD, *[WAIT] * polls, OK)
        stubs.behaviour[names.START_BUILD] = lambda p: StepResult(
            data={**LIMITS, "build_timeout_secs": 86_400}
        ).to_dict()
        start(driver)
        inst = driver.run_to_completion(JOB)
        assert inst.output["status"] == "ready"
        assert stubs.calls.count(names.CHECK_BUILD) == polls + 1
        return inst.generation, inst.max_history

    short_gen, short_hist = run(30)
    long_gen, long_hist = run(300)
    assert short_gen >= 1 and long_gen >= 14
    assert long_hist <= short_hist + 10  # ten times the polls, (almost) the same history


def test_continue_as_new_keeps_phase_and_deadline(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    start(driver)
    inst = driver.run_to_completion(JOB, until=lambda i: i.generation >= 1)
    assert inst.input["phase"] == "build_wait"
    assert inst.input["deadline"] is not None
    assert inst.input["limits"] == LIMITS
    assert stubs.calls.count(names.START_BUILD) == 1  # not restarted by the new generation


def test_build_timeout_stops_the_build_then_fails(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    stubs.behaviour[names.START_BUILD] = lambda p: StepResult(
        data={**LIMITS, "build_timeout_secs": 120}
    ).to_dict()
    start(driver)
    began = driver.now()
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "build_timeout"
    assert stubs.calls[-2:] == [names.STOP_BUILD_FOR_TIMEOUT, names.FAIL_JOB]
    assert timedelta(seconds=120) <= driver.now() - began <= timedelta(seconds=120 + 31)


def test_poll_interval_is_capped_by_the_configured_limit(driver: Driver, stubs: Stubs) -> None:
    stubs.sequence(names.CHECK_BUILD, *[WAIT] * 12, OK)
    stubs.behaviour[names.START_BUILD] = lambda p: StepResult(
        data={**LIMITS, "poll_max_secs": 5}
    ).to_dict()
    start(driver)
    began = driver.now()
    driver.run_to_completion(JOB)
    # 3, 4, then 5 s for the other ten waits: never the uncapped 6, 10, 15, ...
    assert driver.now() - began == timedelta(seconds=3 + 4 + 10 * 5)


def test_image_timeout_fails_as_preview_deploy_failed(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_IMAGE] = lambda p: WAIT
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "preview_deploy_failed"
    assert "time limit" in stubs.payloads[names.FAIL_JOB][0]["message"]


def test_bad_input_fails_the_orchestration_loudly(driver: Driver, stubs: Stubs) -> None:
    driver.start_new(run_job.NAME, "bad", {"phase": "slot"})
    inst = driver.instances["bad"]
    assert inst.status == "Failed"
    assert "job_id" in (inst.error or "")
    assert stubs.calls == []


def test_the_driver_detects_task_id_drift(driver: Driver, stubs: Stubs) -> None:
    """The harness itself can fail: a completion for an id the SDK never allocated."""
    start(driver)
    inst = driver.instances[JOB]
    with pytest.raises(DriverError, match="id drift"):
        driver._episode(inst, [h.task_completed(driver.now(), 41, OK)])


def test_a_cancel_racing_a_successful_finalize_keeps_ready(driver: Driver, stubs: Stubs) -> None:
    stubs.sequence(
        names.CHECK_PREVIEW,
        WAIT,
        StepResult(data={"preview_url": "https://app.acme.example"}).to_dict(),
    )
    start(driver)
    while (driver.instances[JOB].custom_status or {}).get("phase") != "finalize":
        assert driver.step() or driver.jump_to_next_timer()
    assert names.FINALIZE_READY not in stubs.calls  # scheduled, not yet run
    driver.raise_event(JOB, run_job.CANCEL_EVENT, {"by": "test"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "ready"
    assert names.COMPENSATE_CANCEL not in stubs.calls
