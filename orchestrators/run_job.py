"""One orchestration per job (instance id = job id): slot -> build -> image -> preview -> ready.

Each phase calls its activity, then records what it returned. Waits are durable timers raced
against events: ``cancel`` (any time), ``slot_freed`` (a build slot may be free) and
``build_finished`` (the build runner's notice, or the reconciler, says the build has ended). A
push wakes the run at once; timers are the fallback and the deadline, so a long build costs a
handful of history events, not one batch per poll. Every way out (failure, cancel,
continue-as-new) raises ``_Stop`` and leaves through one place.

Activities return :class:`StepResult` dicts whose ``data`` is a payload from
:mod:`shared.domain.payloads`; a raised exception means retries of a transient fault ran out.
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities import names
from orchestrators.state import Phase, RunState
from shared.domain.models import FailureCode, StepResult
from shared.domain.payloads import (
    FailRequest,
    FinalizeRequest,
    ImageBuilt,
    JobRef,
    PhaseLimits,
    PreviewHealthy,
)

NAME = "run_job"
CANCEL_EVENT = "cancel"
BUILD_FINISHED_EVENT = "build_finished"
SLOT_FREED_EVENT = "slot_freed"
RETRY_STEP = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=5)
RETRY_CLEANUP = df.RetryOptions(
    first_retry_interval_in_milliseconds=15_000, max_number_of_attempts=8
)
POLLS_PER_GENERATION = 20
FIRST_POLL_SECS = 2

bp = df.Blueprint()

Steps = Generator[Any, Any, Any]


class _Stop(Exception):
    """Leaves the phase loop: with the outcome to finish with, or ``None`` after
    continue-as-new (the next generation carries on)."""

    def __init__(self, outcome: StepResult | None) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class _Woke(enum.Enum):
    EVENT = "event"
    TIMER = "timer"
    DEADLINE = "deadline"


def poll_delay(round_: int, cap_secs: int) -> timedelta:
    """2, 3, 4, 6, 10, 15, 22, 33, ... seconds, capped at ``cap_secs``."""
    return timedelta(seconds=min(cap_secs, int(FIRST_POLL_SECS * 1.5 ** min(round_, 12))))


@bp.orchestration_trigger(context_name="context", orchestration=NAME, input_type=dict)
def run_job(context: df.DurableOrchestrationContext) -> Steps:
    return (yield from _run(context))


def _run(context: df.DurableOrchestrationContext) -> Steps:
    state = RunState.from_input(context.get_input())
    cancel = _event(context, CANCEL_EVENT)
    try:
        while True:
            if cancel.is_completed:
                raise _Stop(StepResult.was_canceled())
            _publish(context, state)
            output = yield from _advance(context, state, cancel)
            if output is not None:
                _publish(context, state, phase="ready")
                return output
    except _Stop as stop:
        if stop.outcome is None:
            return None
        return (yield from _finish(context, state, stop.outcome))


def _advance(context: df.DurableOrchestrationContext, state: RunState, cancel: Any) -> Steps:
    """Run the current phase one step; returns the orchestration's output once the job is
    ready, else ``None``."""
    job = JobRef(state.job_id).to_dict()
    if state.phase is Phase.SLOT:
        result = yield from _call(context, names.START_BUILD, job)
        state.limits = PhaseLimits.from_dict(result.data)
        if not result.done:  # every slot is taken: wait for one to be freed
            yield from _sleep(context, state, cancel, SLOT_FREED_EVENT, state.limits.poll_max_secs)
            return None
        state.enter(Phase.BUILD_WAIT, deadline=_after(context, state.limits.build_timeout_secs))
    elif state.phase is Phase.BUILD_WAIT:
        limits = _limits(state)
        woke = yield from _sleep(
            context, state, cancel, BUILD_FINISHED_EVENT, limits.build_check_secs or None
        )
        if woke is _Woke.DEADLINE:
            yield from _call(context, names.STOP_BUILD_FOR_TIMEOUT, job)  # always a failure
        result = yield from _call(context, names.CHECK_BUILD, job)
        if result.done:
            state.enter(Phase.IMAGE_WAIT, deadline=_after(context, limits.image_timeout_secs))
    elif state.phase is Phase.IMAGE_WAIT:
        timed_out = StepResult.failure(
            FailureCode.PREVIEW_DEPLOY_FAILED, "image build exceeded its time limit"
        )
        result = yield from _poll(context, state, cancel, names.CHECK_IMAGE, job, timed_out)
        state.image_ref = ImageBuilt.from_dict(result.data).image_ref
        deadline = _after(context, _limits(state).deploy_timeout_secs)
        state.enter(Phase.PREVIEW_WAIT, deadline=deadline)
    elif state.phase is Phase.PREVIEW_WAIT:
        timed_out = StepResult.failure(
            FailureCode.PREVIEW_DEPLOY_FAILED, "preview did not become healthy in time"
        )
        result = yield from _poll(context, state, cancel, names.CHECK_PREVIEW, job, timed_out)
        state.preview_url = PreviewHealthy.from_dict(result.data).preview_url
        state.enter(Phase.FINALIZE)
    else:
        url = str(state.preview_url)
        yield from _call(
            context, names.FINALIZE_READY, FinalizeRequest(state.job_id, url).to_dict()
        )
        return {"job_id": state.job_id, "status": "ready", "preview_url": url}
    return None


def _event(context: df.DurableOrchestrationContext, name: str) -> Any:
    """A wait for the event ``name`` (run_job reads none of its data). Every signal is raised by
    the durable client, which posts the data's JSON text, so the host hands the orchestrator a
    ``str`` (azure-functions-durable-python#295). Declaring that type keeps the SDK's codec from
    logging a type mismatch for every event on every replay."""
    return context.wait_for_external_event(name, expected_type=str)


def _limits(state: RunState) -> PhaseLimits:
    if state.limits is None:
        raise ValueError(f"phase {state.phase} needs the limits start_build returns")
    return state.limits


def _after(context: df.DurableOrchestrationContext, seconds: int) -> str:
    return (context.current_utc_datetime + timedelta(seconds=seconds)).isoformat()


def _publish(context: df.DurableOrchestrationContext, state: RunState, **extra: Any) -> None:
    """The one place custom status is set (what ``GET`` on the instance shows operators)."""
    status = {
        "job_id": state.job_id,
        "phase": state.phase.value,
        "round": state.round,
        "generation": state.generation,
    }
    context.set_custom_status({**status, **extra})


def _call(context: df.DurableOrchestrationContext, activity: str, payload: Any) -> Steps:
    """One retried activity. Returns its result when it is ok; a failure, a canceled row or
    exhausted retries (as ``internal_error``) stop the run."""
    try:
        raw = yield context.call_activity_with_retry(
            activity, RETRY_STEP, payload, expected_type=dict
        )
    except Exception as exc:  # noqa: BLE001 - Durable delivers every activity failure as Exception
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "activity failed"
        raise _Stop(
            StepResult.failure(FailureCode.INTERNAL_ERROR, f"{activity}: {reason}")
        ) from None
    result = StepResult.from_dict(raw)
    if not result.ok:
        raise _Stop(result)
    return result


def _poll(
    context: df.DurableOrchestrationContext,
    state: RunState,
    cancel: Any,
    activity: str,
    payload: Any,
    timed_out: StepResult,
) -> Steps:
    """Call ``activity`` until it reports done. Between calls, sleep on a durable timer, unless
    the activity itself waited for a change (``check_wait_secs``), then call again at once."""
    limits = _limits(state)
    while True:
        result = yield from _call(context, activity, payload)
        if result.done:
            return result
        if cancel.is_completed:
            raise _Stop(StepResult.was_canceled())
        if limits.check_wait_secs > 0:
            if _past_deadline(context, state):
                raise _Stop(timed_out)
            _count_round(context, state)
            continue
        woke = yield from _sleep(context, state, cancel, None, limits.poll_max_secs)
        if woke is _Woke.DEADLINE:
            raise _Stop(timed_out)


def _past_deadline(context: df.DurableOrchestrationContext, state: RunState) -> bool:
    return state.deadline is not None and context.current_utc_datetime >= datetime.fromisoformat(
        state.deadline
    )


def _count_round(context: df.DurableOrchestrationContext, state: RunState) -> None:
    """One more wait in this phase; every ``POLLS_PER_GENERATION`` the run continues as new,
    so history stays bounded however long the phase lasts."""
    state.round += 1
    if state.round % POLLS_PER_GENERATION == 0:
        state.generation += 1
        context.continue_as_new(state.to_dict())
        raise _Stop(None)


def _sleep(
    context: df.DurableOrchestrationContext,
    state: RunState,
    cancel: Any,
    wake_on: str | None,
    cap_secs: int | None,
) -> Steps:
    """Wait for the ``wake_on`` event, a backoff timer capped at ``cap_secs`` (``None``: no
    backoff, only the phase deadline), or the deadline, whichever comes first. A cancel stops
    the run; the losing timer is cancelled, never left to fire."""
    if _past_deadline(context, state):
        return _Woke.DEADLINE
    _count_round(context, state)
    now: datetime = context.current_utc_datetime
    deadline = datetime.fromisoformat(state.deadline) if state.deadline else None
    fire_at = now + poll_delay(state.round, cap_secs) if cap_secs else deadline
    if fire_at is None:
        raise ValueError("a wait needs a backoff cap or a deadline")
    if deadline is not None:
        fire_at = min(fire_at, deadline)
    timer: Any = context.create_timer(fire_at)  # a TimerTask
    waits = [timer, cancel]
    if wake_on is not None:
        waits.append(_event(context, wake_on))
    winner = yield context.task_any(waits)
    if winner != timer:
        timer.cancel()
    if winner == cancel:
        raise _Stop(StepResult.was_canceled())
    if winner != timer:
        return _Woke.EVENT
    return _Woke.DEADLINE if deadline is not None and fire_at >= deadline else _Woke.TIMER


def _finish(context: df.DurableOrchestrationContext, state: RunState, outcome: StepResult) -> Steps:
    """Compensate and end: a cancel cleans up; a failure marks the job failed and cleans up."""
    if outcome.canceled:
        _publish(context, state, phase="canceled")
        yield context.call_activity_with_retry(
            names.COMPENSATE_CANCEL,
            RETRY_CLEANUP,
            JobRef(state.job_id).to_dict(),
            expected_type=dict,
        )
        return {"job_id": state.job_id, "status": "canceled"}
    code = outcome.code or FailureCode.INTERNAL_ERROR.value
    message = outcome.message or "job failed"
    _publish(context, state, phase="failed", code=code)
    yield context.call_activity_with_retry(
        names.FAIL_JOB,
        RETRY_CLEANUP,
        FailRequest(state.job_id, code, message).to_dict(),
        expected_type=dict,
    )
    return {"job_id": state.job_id, "status": "failed", "code": code}
