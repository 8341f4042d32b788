"""One orchestration per job (instance id = job id): slot -> build -> image -> preview -> ready.

Waiting is done with durable timers and exponential backoff, raced against the ``cancel``
external event; after ``POLLS_PER_GENERATION`` polls the run continues as new, so history stays
bounded however long a build takes. Activities return StepResult dicts; a raised exception means
retries of a transient fault ran out.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities import names
from orchestrators.state import RunState
from shared.domain.models import FailureCode, StepResult

NAME = "run_job"
CANCEL_EVENT = "cancel"
RETRY_STEP = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=5)
RETRY_CLEANUP = df.RetryOptions(
    first_retry_interval_in_milliseconds=15_000, max_number_of_attempts=8
)
POLLS_PER_GENERATION = 20
FIRST_POLL_SECS = 2
MAX_POLL_SECS = 30

bp = df.Blueprint()

Steps = Generator[Any, Any, Any]


class _Outcome:
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    CONTINUED = "continued"


def poll_delay(round_: int, cap_secs: int = MAX_POLL_SECS) -> timedelta:
    """2, 3, 4, 6, 10, 15, 22, 30, ... seconds, capped at ``cap_secs``."""
    return timedelta(seconds=min(cap_secs, int(FIRST_POLL_SECS * 1.5 ** min(round_, 12))))


@bp.orchestration_trigger(context_name="context", orchestration=NAME, input_type=dict)
def run_job(context: df.DurableOrchestrationContext) -> Steps:
    return (yield from _run(context))


def _run(context: df.DurableOrchestrationContext) -> Steps:
    state = RunState.from_input(context.get_input())
    cancel = context.wait_for_external_event(CANCEL_EVENT, expected_type=dict)
    ref = {"job_id": state.job_id}
    while True:
        context.set_custom_status(
            {
                "job_id": state.job_id,
                "phase": state.phase,
                "round": state.round,
                "generation": state.generation,
            }
        )
        if state.phase == "slot":
            result = yield from _poll(context, state, cancel, names.CLAIM_BUILD_SLOT, ref)
            if not isinstance(result, StepResult):
                return (yield from _settle(context, state, result))
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.enter("build")
        elif state.phase == "build":
            result = yield from _call(context, cancel, names.START_BUILD, ref)
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.limits = {k: int(v) for k, v in result.data.items()}
            state.enter("build_wait", deadline=_after(context, state, "build_timeout_secs"))
        elif state.phase == "build_wait":
            result = yield from _poll(context, state, cancel, names.CHECK_BUILD, ref)
            if result == _Outcome.TIMED_OUT:
                result = yield from _call(context, cancel, names.STOP_BUILD_FOR_TIMEOUT, ref)
            if not isinstance(result, StepResult):
                return (yield from _settle(context, state, result))
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.enter("image")
        elif state.phase == "image":
            result = yield from _call(context, cancel, names.START_IMAGE, ref)
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.enter("image_wait", deadline=_after(context, state, "image_timeout_secs"))
        elif state.phase == "image_wait":
            result = yield from _poll(context, state, cancel, names.CHECK_IMAGE, ref)
            if result == _Outcome.TIMED_OUT:
                result = StepResult.failure(
                    FailureCode.PREVIEW_DEPLOY_FAILED, "image build exceeded its time limit"
                )
            if not isinstance(result, StepResult):
                return (yield from _settle(context, state, result))
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.image_ref = str(result.data["image_ref"])
            state.enter("preview")
        elif state.phase == "preview":
            payload = {**ref, "image_ref": state.image_ref}
            result = yield from _call(context, cancel, names.START_PREVIEW, payload)
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.enter("preview_wait", deadline=_after(context, state, "deploy_timeout_secs"))
        elif state.phase == "preview_wait":
            result = yield from _poll(context, state, cancel, names.CHECK_PREVIEW, ref)
            if result == _Outcome.TIMED_OUT:
                result = StepResult.failure(
                    FailureCode.PREVIEW_DEPLOY_FAILED, "preview did not become healthy in time"
                )
            if not isinstance(result, StepResult):
                return (yield from _settle(context, state, result))
            if not result.ok:
                return (yield from _finish(context, state, result))
            state.preview_url = str(result.data["preview_url"])
            state.enter("finalize")
        else:  # finalize
            payload = {**ref, "preview_url": state.preview_url}
            result = yield from _call(context, cancel, names.FINALIZE_READY, payload)
            if not result.ok:
                return (yield from _finish(context, state, result))
            context.set_custom_status({"job_id": state.job_id, "phase": "ready"})
            return {"job_id": state.job_id, "status": "ready", "preview_url": state.preview_url}


def _after(context: df.DurableOrchestrationContext, state: RunState, limit: str) -> str:
    seconds = (state.limits or {}).get(limit, 3600)
    return (context.current_utc_datetime + timedelta(seconds=seconds)).isoformat()


def _call(
    context: df.DurableOrchestrationContext, cancel: Any, activity: str, payload: dict[str, Any]
) -> Steps:
    """One retried activity. Exhausted retries become an ``internal_error`` StepResult."""
    try:
        raw = yield context.call_activity_with_retry(
            activity, RETRY_STEP, payload, expected_type=dict
        )
    except Exception as exc:  # noqa: BLE001 - Durable delivers every activity failure as Exception
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "activity failed"
        return StepResult.failure(FailureCode.INTERNAL_ERROR, f"{activity}: {reason}")
    result = StepResult.from_dict(raw)
    if cancel.is_completed and result.ok and activity != names.FINALIZE_READY:
        return StepResult.was_canceled()  # a job that already reached ready is not canceled
    return result


def _poll(
    context: df.DurableOrchestrationContext,
    state: RunState,
    cancel: Any,
    activity: str,
    payload: dict[str, Any],
) -> Steps:
    """Call ``activity`` until it reports done, sleeping on durable timers between calls."""
    while True:
        result = yield from _call(context, cancel, activity, payload)
        if not result.ok or result.done:
            return result
        now: datetime = context.current_utc_datetime
        if state.deadline is not None and now >= datetime.fromisoformat(state.deadline):
            return _Outcome.TIMED_OUT
        state.round += 1
        if state.round % POLLS_PER_GENERATION == 0:
            state.generation += 1
            context.continue_as_new(state.to_dict())
            return _Outcome.CONTINUED
        cap = (state.limits or {}).get("poll_max_secs", MAX_POLL_SECS)
        timer: Any = context.create_timer(now + poll_delay(state.round, cap))  # a TimerTask
        winner = yield context.task_any([timer, cancel])
        if winner == cancel:
            timer.cancel()
            return _Outcome.CANCELED


def _settle(context: df.DurableOrchestrationContext, state: RunState, outcome: Any) -> Steps:
    if outcome == _Outcome.CONTINUED:
        return None
    return (yield from _finish(context, state, StepResult.was_canceled()))


def _finish(context: df.DurableOrchestrationContext, state: RunState, result: StepResult) -> Steps:
    """Compensate and end: a cancel cleans up; a failure marks the job failed and cleans up."""
    ref = {"job_id": state.job_id}
    if result.canceled:
        context.set_custom_status({"job_id": state.job_id, "phase": "canceled"})
        yield context.call_activity_with_retry(
            names.COMPENSATE_CANCEL, RETRY_CLEANUP, ref, expected_type=dict
        )
        return {"job_id": state.job_id, "status": "canceled"}
    code = result.code or FailureCode.INTERNAL_ERROR.value
    message = result.message or "job failed"
    context.set_custom_status({"job_id": state.job_id, "phase": "failed", "code": code})
    yield context.call_activity_with_retry(
        names.FAIL_JOB,
        RETRY_CLEANUP,
        {**ref, "code": code, "message": message},
        expected_type=dict,
    )
    return {"job_id": state.job_id, "status": "failed", "code": code}
