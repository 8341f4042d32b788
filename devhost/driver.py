"""An in-process Durable Functions backend for tests and the dev server.

It runs the app's own orchestrators through the SDK's real replay entry point
(``FunctionBuilder.build().get_user_function()``, what the Python worker calls), with history
built the way the Durable extension builds it, and plays the extension's part: it runs activities
(DTFx retry semantics and id allocation), fires durable timers on a virtual (or real) clock,
delivers external events and restarts on ``continue_as_new``.

Not covered (by design): the .NET host, the Azure Storage task hub, sub-orchestrations,
entities and ``call_http`` (they raise ``NotImplementedError``).
"""

from __future__ import annotations

import json
import re
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost import history as h
from devhost.indexing import binding_types, indexed_functions

CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CONTINUE_AS_NEW, CREATE_TIMER, WAIT_FOR_EVENT = (
    0,
    1,
    4,
    5,
    6,
)
_DUPLICATE = re.compile(r"Potential duplicate Task completion for TaskId: (.+)$")

ActivityHook = Callable[[str, Any, int], None]


class DriverError(RuntimeError):
    """The driver and the SDK disagree (id drift, unsupported action)."""


class Stuck(RuntimeError):
    """An orchestration is idle with nothing that could wake it."""


@dataclass
class _Activity:
    task_id: int
    name: str
    input: Any
    max_attempts: int = 1
    retry_interval: timedelta = timedelta(0)
    attempt: int = 1


@dataclass
class _Timer:
    task_id: int
    fire_at: datetime
    retry_of: _Activity | None = None


@dataclass
class Instance:
    instance_id: str
    name: str
    input: Any
    created: datetime
    status: str = "Pending"
    output: Any = None
    error: str | None = None
    custom_status: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0
    next_id: int = 0
    known_actions: int = 0
    timer_by_position: dict[int, int] = field(default_factory=dict)
    ready: list[_Activity] = field(default_factory=list)
    timers: dict[int, _Timer] = field(default_factory=dict)
    custom_status_log: list[Any] = field(default_factory=list)
    activity_calls: list[tuple[str, Any, int]] = field(default_factory=list)
    max_history: int = 0
    #: Every history event the provider would store, over all generations: episode markers,
    #: scheduled/completed tasks, timers, events, execution started/completed.
    total_events: int = 0
    last_updated: datetime | None = None

    @property
    def is_running(self) -> bool:
        return self.status in ("Pending", "Running")


class Driver:
    def __init__(
        self, app: Any, *, schema: int = 0, start: datetime | None = None, realtime: bool = False
    ) -> None:
        self.schema = schema
        self.realtime = realtime
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.instances: dict[str, Instance] = {}
        self.lock = threading.RLock()
        self.activity_hook: ActivityHook | None = None
        #: Runs after an activity returned; raising here simulates a lost completion (the side
        #: effects happened, Durable redelivers the activity): at-least-once execution.
        self.after_activity_hook: ActivityHook | None = None
        self.orchestrators: dict[str, Callable[[str], str]] = {}
        self.activities: dict[str, Callable[[Any], Any]] = {}
        for function in indexed_functions(app):
            kinds = binding_types(function)
            name = function.get_function_name()
            if "orchestrationTrigger" in kinds:
                self.orchestrators[name] = function.get_user_function()
            elif "activityTrigger" in kinds:
                self.activities[name] = function.get_user_function()

    # -- clock -------------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) if self.realtime else self._now

    # -- client operations -------------------------------------------------------------------
    def start_new(self, name: str, instance_id: str, input_: Any) -> str:
        with self.lock:
            if name not in self.orchestrators:
                raise DriverError(f"no orchestrator named {name!r}")
            existing = self.instances.get(instance_id)
            if existing is not None and existing.is_running:
                raise DriverError(f"instance {instance_id} is already running")
            inst = Instance(instance_id, name, input_, created=self.now())
            self.instances[instance_id] = inst
            self._begin_generation(inst, input_)
            return instance_id

    def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        with self.lock:
            inst = self.instances.get(instance_id)
            if inst is None:
                raise KeyError(instance_id)
            if not inst.is_running:
                return  # the extension drops events for finished instances
            self._episode(inst, [h.event_raised(self.now(), name, data)])

    def terminate(self, instance_id: str, reason: str) -> None:
        with self.lock:
            inst = self.instances[instance_id]
            if inst.is_running:
                inst.status, inst.output = "Terminated", reason
                inst.ready.clear()
                inst.timers.clear()

    def purge(self, instance_id: str) -> int:
        with self.lock:
            inst = self.instances.get(instance_id)
            if inst is None or inst.is_running:
                return 0
            del self.instances[instance_id]
            return 1

    # -- running -----------------------------------------------------------------------------
    def step(self) -> bool:
        """Do one unit of due work (an activity, or a timer due now). False when idle."""
        with self.lock:
            for inst in list(self.instances.values()):
                if inst.is_running and inst.ready:
                    self._run_activity(inst, inst.ready.pop(0))
                    return True
            due = self._next_timer()
            if due is not None and due[1].fire_at <= self.now():
                inst, timer = due
                self._fire(inst, timer)
                return True
            return False

    def run_until_idle(self, max_steps: int = 100_000) -> None:
        for _ in range(max_steps):
            if not self.step():
                return
        raise Stuck(f"still busy after {max_steps} steps")

    def jump_to_next_timer(self) -> bool:
        """Move the virtual clock to the next pending timer without running anything (for
        tests that step one unit at a time). False when no timer is pending."""
        due = self._next_timer()
        if due is None:
            return False
        self._now = max(self._now, due[1].fire_at)
        return True

    def advance(self, delta: timedelta) -> None:
        """Move the virtual clock forward by ``delta``, firing timers in order on the way."""
        target = self._now + delta
        self.run_until_idle()
        while True:
            due = self._next_timer()
            if due is None or due[1].fire_at > target:
                break
            self._now = max(self._now, due[1].fire_at)
            self.run_until_idle()
        self._now = target
        self.run_until_idle()

    def run_to_completion(
        self,
        instance_id: str,
        *,
        limit: timedelta = timedelta(days=7),
        until: Callable[[Instance], bool] | None = None,
        between_timers: Callable[[], None] | None = None,
    ) -> Instance:
        """Run (jumping the clock from timer to timer) until the instance finishes or ``until``.

        ``between_timers`` runs before each jump: e.g. a short real sleep, so that real
        processes a step started (a local build) make progress while virtual time flies."""
        stop = until or (lambda inst: not inst.is_running)
        deadline = self._now + limit
        while True:
            self.run_until_idle()
            inst = self.instances[instance_id]
            if stop(inst):
                return inst
            if between_timers is not None:
                between_timers()
                self.run_until_idle()
                if stop(inst):
                    return inst
            due = self._next_timer()
            if due is None:
                raise Stuck(f"{instance_id} is {inst.status} with nothing scheduled")
            if due[1].fire_at > deadline:
                raise Stuck(f"{instance_id} did not finish within {limit}")
            self._now = max(self._now, due[1].fire_at)

    # -- internals ---------------------------------------------------------------------------
    def _next_timer(self) -> tuple[Instance, _Timer] | None:
        best: tuple[Instance, _Timer] | None = None
        for inst in self.instances.values():
            if not inst.is_running:
                continue
            for timer in inst.timers.values():
                if best is None or timer.fire_at < best[1].fire_at:
                    best = (inst, timer)
        return best

    def _begin_generation(self, inst: Instance, input_: Any) -> None:
        now = self.now()
        inst.input = input_
        inst.history = []
        inst.next_id = inst.known_actions = 0
        inst.timer_by_position.clear()
        inst.ready.clear()
        inst.timers.clear()
        inst.status = "Running"
        self._episode(inst, [h.execution_started(now, inst.name, json.dumps(input_))])

    def _run_activity(self, inst: Instance, act: _Activity) -> None:
        now = self.now()
        inst.activity_calls.append((act.name, act.input, act.attempt))
        try:
            if self.activity_hook is not None:
                self.activity_hook(act.name, act.input, act.attempt)
            fn = self.activities[act.name]
            result = fn(act.input)
            json.dumps(result)
            if self.after_activity_hook is not None:
                self.after_activity_hook(act.name, act.input, act.attempt)
        except Exception as exc:  # noqa: BLE001 - delivered to the orchestrator as TaskFailed
            self._episode(
                inst,
                [
                    h.task_failed(
                        now,
                        act.task_id,
                        f"{type(exc).__name__}: {exc}",
                        traceback.format_exc(limit=3),
                    )
                ],
            )
            if not inst.is_running:
                return
            if act.max_attempts > 1:
                timer_id = self._take_id(inst)
                inst.timers[timer_id] = _Timer(timer_id, now + act.retry_interval, retry_of=act)
            return
        self._episode(inst, [h.task_completed(now, act.task_id, result)])

    def _fire(self, inst: Instance, timer: _Timer) -> None:
        del inst.timers[timer.task_id]
        self._episode(inst, [h.timer_fired(self.now(), timer.task_id, timer.fire_at)])
        act = timer.retry_of
        if act is not None and inst.is_running and act.attempt < act.max_attempts:
            retry = _Activity(
                self._take_id(inst),
                act.name,
                act.input,
                act.max_attempts,
                act.retry_interval,
                act.attempt + 1,
            )
            inst.history.append(h.task_scheduled(self.now(), retry.task_id, retry.name))
            inst.total_events += 1
            inst.ready.append(retry)

    def _take_id(self, inst: Instance) -> int:
        inst.next_id += 1
        return inst.next_id - 1

    def _episode(self, inst: Instance, new_events: list[dict[str, Any]]) -> None:
        now = self.now()
        inst.history.append(h.orchestrator_started(now))
        inst.history.extend(new_events)
        inst.total_events += 2 + len(new_events)  # + OrchestratorCompleted below
        context = {
            "history": h.mark_played(inst.history),
            "instanceId": inst.instance_id,
            "isReplaying": False,
            "parentInstanceId": None,
            "input": json.dumps(inst.input),
            "upperSchemaVersion": self.schema,
        }
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                state = json.loads(self.orchestrators[inst.name](json.dumps(context)))
                failed = None
            except Exception as exc:
                text = str(exc)
                marker = "\n\n$OutOfProcData$:"
                if marker not in text:
                    raise
                failed, _, raw = text.partition(marker)
                state = json.loads(raw)
        for w in caught:
            match = _DUPLICATE.search(str(w.message))
            if match and match.group(1).strip().lstrip("-").isdigit():
                raise DriverError(f"task id drift: {w.message}")
            if not match:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        inst.history.append(h.orchestrator_completed(now))
        inst.max_history = max(inst.max_history, len(inst.history))
        inst.last_updated = now
        if state.get("customStatus") is not None and state["customStatus"] != inst.custom_status:
            inst.custom_status = state["customStatus"]
            inst.custom_status_log.append(inst.custom_status)
        actions = _flatten(state.get("actions") or [])
        if failed is not None:
            inst.status, inst.error, inst.output = "Failed", failed, failed
            inst.ready.clear()
            inst.timers.clear()
            return
        self._schedule(inst, actions)
        if state.get("isDone"):
            inst.total_events += 1  # ExecutionCompleted (also ends a continued-as-new generation)
            restart = next((a for a in actions if a["actionType"] == CONTINUE_AS_NEW), None)
            if restart is not None:
                inst.generation += 1
                raw_input = restart.get("input")
                self._begin_generation(inst, json.loads(raw_input) if raw_input else None)
                return
            inst.status, inst.output = "Completed", state.get("output")
            inst.ready.clear()
            inst.timers.clear()

    def _schedule(self, inst: Instance, actions: list[dict[str, Any]]) -> None:
        now = self.now()
        for position, action in enumerate(actions):
            kind = action["actionType"]
            if position < inst.known_actions:
                if kind == CREATE_TIMER and action.get("isCanceled"):
                    timer_id = inst.timer_by_position.get(position)
                    if timer_id is not None:
                        inst.timers.pop(timer_id, None)
                continue
            if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                retry = action.get("retryOptions") or {}
                act = _Activity(
                    self._take_id(inst),
                    action["functionName"],
                    json.loads(action["input"]) if action.get("input") is not None else None,
                    max_attempts=int(retry.get("maxNumberOfAttempts", 1)),
                    retry_interval=timedelta(
                        milliseconds=int(retry.get("firstRetryIntervalInMilliseconds", 0))
                    ),
                )
                if act.name not in self.activities:
                    raise DriverError(f"no activity named {act.name!r}")
                inst.history.append(h.task_scheduled(now, act.task_id, act.name))
                inst.total_events += 1
                inst.ready.append(act)
            elif kind == CREATE_TIMER:
                timer_id = self._take_id(inst)
                fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
                inst.timer_by_position[position] = timer_id
                if not action.get("isCanceled"):
                    inst.timers[timer_id] = _Timer(timer_id, fire_at)
                inst.history.append(h.timer_created(now, timer_id, fire_at))
                inst.total_events += 1
            elif kind in (WAIT_FOR_EVENT, CONTINUE_AS_NEW):
                pass
            else:
                raise NotImplementedError(f"action type {kind} is not supported by the driver")
        inst.known_actions = len(actions)


def _flatten(actions: list[Any]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for item in actions:
        if isinstance(item, list):
            flat.extend(_flatten(item))
        elif "compoundActions" in item:
            flat.extend(_flatten(item["compoundActions"]))
        else:
            flat.append(item)
    return flat
