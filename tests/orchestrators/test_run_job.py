"""run_job through the SDK's real replay engine (devhost.Driver), activities stubbed.

Every test runs under replay schema V1 and V3; UserWarnings are errors, and the driver turns
the SDK's "duplicate Task completion" warning for numeric ids into a failure (id drift). Stub
results are built from the same payload types the real activities return."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

import function_app
from activities import names
from devhost import history as h
from devhost.driver import Driver, DriverError
from devhost.worker import run_in_worker
from orchestrators import run_job, signals
from orchestrators.state import RunState
from shared.domain.models import StepResult
from shared.domain.payloads import (
    FailRequest,
    FinalizeRequest,
    ImageBuilt,
    JobRef,
    PhaseLimits,
    PreviewHealthy,
)

JOB = "fj_01JTESTTESTTESTTESTTESTTES"
URL = "https://app.acme.example"
OK = StepResult().to_dict()
WAIT = StepResult(done=False).to_dict()
#: Poll mode (build_check_secs > 0), no long-poll: the shape most tests exercise.
LIMITS = PhaseLimits(
    build_timeout_secs=3600,
    image_timeout_secs=600,
    deploy_timeout_secs=600,
    poll_max_secs=30,
    build_check_secs=30,
    check_wait_secs=0,
)


def started(limits: PhaseLimits = LIMITS, *, done: bool = True) -> dict[str, Any]:
    return StepResult(done=done, data=limits.to_dict()).to_dict()


IMAGE = StepResult(data=ImageBuilt("img:1").to_dict()).to_dict()
HEALTHY = StepResult(data=PreviewHealthy(URL).to_dict()).to_dict()


class Stubs:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.calls: list[str] = []
        self.payloads: dict[str, list[Any]] = {}
        self.behaviour: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            names.START_BUILD: lambda p: started(),
            names.CHECK_BUILD: lambda p: OK,
            names.STOP_BUILD_FOR_TIMEOUT: lambda p: StepResult.failure(
                "build_timeout", "build exceeded the 3600s wall-clock timeout"
            ).to_dict(),
            names.CHECK_IMAGE: lambda p: IMAGE,
            names.CHECK_PREVIEW: lambda p: HEALTHY,
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


def signal(driver: Driver, event: str, data: Any) -> None:
    """Raise ``event`` as the app's signals arrive: the durable client posts the data's JSON
    text, and the host hands that text to the orchestrator (see the codec test at the end)."""
    driver.raise_event(JOB, event, json.dumps(data))


def test_happy_path_runs_every_step_in_order(driver: Driver, stubs: Stubs) -> None:
    stubs.sequence(names.CHECK_BUILD, WAIT, WAIT, WAIT, OK)
    start(driver)
    began = driver.now()
    inst = driver.run_to_completion(JOB)
    assert inst.status == "Completed"
    assert inst.output == {"job_id": JOB, "status": "ready", "preview_url": URL}
    assert stubs.calls == [
        names.START_BUILD,
        *[names.CHECK_BUILD] * 4,
        names.CHECK_IMAGE,
        names.CHECK_PREVIEW,
        names.FINALIZE_READY,
    ]
    # Four waits with backoff 3 s, 4 s, 6 s, 10 s on durable timers (no busy loop).
    assert driver.now() - began == timedelta(seconds=3 + 4 + 6 + 10)
    phases = [s["phase"] for s in inst.custom_status_log]
    assert phases[0] == "slot" and phases[-1] == "ready"
    assert {"build_wait", "image_wait", "preview_wait", "finalize"} <= set(phases)
    assert stubs.payloads[names.START_BUILD] == [JobRef(JOB).to_dict()]
    assert stubs.payloads[names.FINALIZE_READY] == [FinalizeRequest(JOB, URL).to_dict()]


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
    (failure,) = [FailRequest.from_dict(p) for p in stubs.payloads[names.FAIL_JOB]]
    assert failure.code == "internal_error" and "start_build" in failure.message
    assert "storage down" in failure.message


def test_expected_failures_are_values_not_retries(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: StepResult.failure(
        "build_crashed", "no terminal report in the build stream"
    ).to_dict()
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "build_crashed"
    assert stubs.calls.count(names.CHECK_BUILD) == 1
    failure = FailRequest.from_dict(stubs.payloads[names.FAIL_JOB][0])
    assert failure.message == "no terminal report in the build stream"
    assert names.CHECK_IMAGE not in stubs.calls


def test_a_canceled_row_seen_by_an_activity_compensates(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_IMAGE] = lambda p: StepResult.was_canceled().to_dict()
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
    signal(driver, run_job.CANCEL_EVENT, {"by": "test"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "canceled"
    assert stubs.calls.count(names.CHECK_BUILD) == checks
    assert stubs.calls[-1] == names.COMPENSATE_CANCEL
    assert not inst.timers  # the pending poll timer was cancelled, not left to fire


def test_cancel_raised_before_the_orchestrator_waits_for_it_is_not_lost(
    driver: Driver, stubs: Stubs
) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    start(driver)  # start_build is scheduled but has not run yet
    signal(driver, run_job.CANCEL_EVENT, {"by": "test"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "canceled"
    assert stubs.calls[-1] == names.COMPENSATE_CANCEL


def test_long_builds_continue_as_new_so_history_stays_bounded(schema: int) -> None:
    def run(polls: int) -> tuple[int, int]:
        driver = Driver(function_app.app, schema=schema)
        stubs = Stubs(driver)
        stubs.sequence(names.CHECK_BUILD, *[WAIT] * polls, OK)
        stubs.behaviour[names.START_BUILD] = lambda p: started(
            replace(LIMITS, build_timeout_secs=86_400)
        )
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
    assert inst.input["limits"] == LIMITS.to_dict()
    assert stubs.calls.count(names.START_BUILD) == 1  # not restarted by the new generation


def test_build_timeout_stops_the_build_then_fails(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    stubs.behaviour[names.START_BUILD] = lambda p: started(replace(LIMITS, build_timeout_secs=120))
    start(driver)
    began = driver.now()
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "build_timeout"
    assert stubs.calls[-2:] == [names.STOP_BUILD_FOR_TIMEOUT, names.FAIL_JOB]
    assert timedelta(seconds=120) <= driver.now() - began <= timedelta(seconds=120 + 31)


def test_poll_interval_is_capped_by_the_configured_limit(driver: Driver, stubs: Stubs) -> None:
    stubs.sequence(names.CHECK_IMAGE, *[WAIT] * 12, IMAGE)
    stubs.behaviour[names.START_BUILD] = lambda p: started(
        replace(LIMITS, poll_max_secs=5, build_check_secs=0)
    )
    start(driver)
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("phase") == "build_wait")
    signal(driver, run_job.BUILD_FINISHED_EVENT, {"by": "test"})
    began = driver.now()
    driver.run_to_completion(JOB)
    # 3, 4, then 5 s for the other ten waits: never the uncapped 6, 10, 15, ...
    assert driver.now() - began == timedelta(seconds=3 + 4 + 10 * 5)


def test_build_checks_are_capped_by_build_check_secs(driver: Driver, stubs: Stubs) -> None:
    stubs.sequence(names.CHECK_BUILD, *[WAIT] * 5, OK)
    stubs.behaviour[names.START_BUILD] = lambda p: started(replace(LIMITS, build_check_secs=4))
    start(driver)
    began = driver.now()
    driver.run_to_completion(JOB)
    assert driver.now() - began == timedelta(seconds=3 + 4 * 5)


def test_image_timeout_fails_as_preview_deploy_failed(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.CHECK_IMAGE] = lambda p: WAIT
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "preview_deploy_failed"
    assert "time limit" in FailRequest.from_dict(stubs.payloads[names.FAIL_JOB][0]).message


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
    stubs.sequence(names.CHECK_PREVIEW, WAIT, HEALTHY)
    start(driver)
    while (driver.instances[JOB].custom_status or {}).get("phase") != "finalize":
        assert driver.step() or driver.jump_to_next_timer()
    assert names.FINALIZE_READY not in stubs.calls  # scheduled, not yet run
    signal(driver, run_job.CANCEL_EVENT, {"by": "test"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "ready"
    assert names.COMPENSATE_CANCEL not in stubs.calls


PUSHED = replace(LIMITS, build_check_secs=0)


def test_a_pushed_build_end_wakes_the_run_at_once(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.START_BUILD] = lambda p: started(PUSHED)
    start(driver)
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("phase") == "build_wait")
    assert stubs.calls == [names.START_BUILD]
    assert len(driver.instances[JOB].timers) == 1  # only the deadline, no poll timer
    began = driver.now()
    signal(driver, run_job.BUILD_FINISHED_EVENT, {"by": "runner"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "ready"
    assert driver.now() == began  # no timer was waited for
    assert stubs.calls.count(names.CHECK_BUILD) == 1
    assert not inst.timers  # the deadline timer was cancelled


def test_a_fifty_minute_build_costs_at_most_forty_history_events(
    driver: Driver, stubs: Stubs
) -> None:
    stubs.behaviour[names.START_BUILD] = lambda p: started(replace(PUSHED, check_wait_secs=20))
    stubs.sequence(names.CHECK_IMAGE, WAIT, WAIT, IMAGE)  # two long-polls, then built
    start(driver)
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("phase") == "build_wait")
    driver.advance(timedelta(minutes=50))
    signal(driver, run_job.BUILD_FINISHED_EVENT, {"by": "runner"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "ready"
    assert inst.total_events <= 40, inst.total_events


def test_a_spurious_build_finished_goes_back_to_waiting(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.START_BUILD] = lambda p: started(PUSHED)
    stubs.sequence(names.CHECK_BUILD, WAIT, OK)
    start(driver)
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("phase") == "build_wait")
    signal(driver, run_job.BUILD_FINISHED_EVENT, {"by": "reconciler"})
    driver.run_until_idle()
    assert stubs.calls.count(names.CHECK_BUILD) == 1
    assert driver.instances[JOB].custom_status["phase"] == "build_wait"
    signal(driver, run_job.BUILD_FINISHED_EVENT, {"by": "runner"})
    assert driver.run_to_completion(JOB).output["status"] == "ready"
    assert stubs.calls.count(names.CHECK_BUILD) == 2


def test_a_pushed_build_still_times_out_at_its_deadline(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.START_BUILD] = lambda p: started(replace(PUSHED, build_timeout_secs=900))
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    start(driver)
    began = driver.now()
    inst = driver.run_to_completion(JOB)
    assert inst.output["code"] == "build_timeout"
    assert driver.now() - began == timedelta(seconds=900)
    assert names.CHECK_BUILD not in stubs.calls  # nothing polled in between


def test_a_queued_job_waits_for_a_slot_and_wakes_when_one_is_freed(
    driver: Driver, stubs: Stubs
) -> None:
    stubs.sequence(names.START_BUILD, started(done=False), started(done=False), started())
    start(driver)
    driver.run_until_idle()
    assert stubs.calls == [names.START_BUILD]  # all slots taken: asleep on a backoff timer
    began = driver.now()
    signal(driver, run_job.SLOT_FREED_EVENT, {})
    driver.run_until_idle()
    assert stubs.calls == [names.START_BUILD] * 2 and driver.now() == began
    inst = driver.run_to_completion(JOB)  # the fallback timer covers a missed wake-up
    assert inst.output["status"] == "ready"
    assert stubs.calls.count(names.START_BUILD) == 3


def test_long_polling_checks_are_called_again_without_timers(driver: Driver, stubs: Stubs) -> None:
    stubs.behaviour[names.START_BUILD] = lambda p: started(replace(PUSHED, check_wait_secs=20))
    stubs.sequence(names.CHECK_IMAGE, WAIT, WAIT, WAIT, IMAGE)
    stubs.sequence(names.CHECK_PREVIEW, WAIT, HEALTHY)
    start(driver)
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("phase") == "build_wait")
    began = driver.now()
    signal(driver, run_job.BUILD_FINISHED_EVENT, {"by": "runner"})
    inst = driver.run_to_completion(JOB)
    assert inst.output["status"] == "ready"
    assert driver.now() == began  # the activities waited; the orchestrator slept on no timer
    assert stubs.calls.count(names.CHECK_IMAGE) == 4 and stubs.calls.count(names.CHECK_PREVIEW) == 2


def test_an_activity_result_missing_a_field_fails_loudly(driver: Driver, stubs: Stubs) -> None:
    incomplete = {k: v for k, v in LIMITS.to_dict().items() if k != "poll_max_secs"}
    stubs.behaviour[names.START_BUILD] = lambda p: StepResult(data=incomplete).to_dict()
    start(driver)
    inst = driver.run_to_completion(JOB)
    assert inst.status == "Failed"
    assert "PhaseLimits is missing poll_max_secs" in (inst.error or "")


def test_run_state_round_trips_through_continue_as_new_input() -> None:
    state = RunState(JOB, limits=LIMITS, deadline="2026-01-01T00:00:00+00:00")
    assert RunState.from_input(state.to_dict()) == state
    with pytest.raises(ValueError, match="unknown phase"):
        RunState.from_input({"job_id": JOB, "phase": "build"})


#: The logger of azure-functions' Durable JSON codec (``_durable_functions.df_loads``).
SDK_CODEC_LOGGER = "azure.functions.DurableFunctions"


def test_signals_sent_by_the_durable_client_replay_without_codec_warnings(
    driver: Driver, stubs: Stubs, client, caplog: pytest.LogCaptureFixture
) -> None:
    """Every signal goes through the SDK's client, as the app sends it (``orchestrators.signals``
    -> the management API -> the driver). The client posts the data's JSON text, so the event
    carries a ``str`` (on Azure too: azure-functions-durable-python#295). An ``expected_type``
    that does not match made the SDK log "df_loads: deserialized value (str) is not compatible
    with expected type" for every raised event on every replay."""
    caplog.set_level(logging.WARNING, logger=SDK_CODEC_LOGGER)
    stubs.sequence(names.START_BUILD, started(done=False), started())
    stubs.behaviour[names.CHECK_BUILD] = lambda p: WAIT
    run_in_worker(signals.start(client, JOB))
    driver.run_until_idle()
    assert run_in_worker(signals.wake_queued(client, [JOB])) == [JOB]
    driver.run_to_completion(JOB, until=lambda i: i.custom_status.get("phase") == "build_wait")
    run_in_worker(signals.build_finished(client, JOB, by="runner"))
    driver.run_until_idle()
    run_in_worker(signals.cancel(client, JOB, by="test"))
    inst = driver.run_to_completion(JOB)
    assert inst.output == {"job_id": JOB, "status": "canceled"}
    assert stubs.calls.count(names.START_BUILD) == 2  # woken by slot_freed
    assert names.CHECK_BUILD in stubs.calls  # woken by build_finished
    assert [r.getMessage() for r in caplog.records if r.name == SDK_CODEC_LOGGER] == []
