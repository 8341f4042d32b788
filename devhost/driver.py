"""An in-process Durable Functions backend for tests and the dev server.

It runs the app's own orchestrators through the SDK's real replay entry point
(``FunctionBuilder.build().get_user_function()``, what the Python worker calls), with history
built the way the Durable extension builds it, and plays the extension's part: it runs activities
(DTFx retry semantics and id allocation), fires durable timers on a virtual (or real) clock,
delivers external events and restarts on ``continue_as_new``.

Concurrency: one lock guards every instance's state, and is held only for bookkeeping and
replays (milliseconds). Activities run *outside* it: :meth:`Driver.take_ready` hands them out,
:meth:`Driver.execute` runs one on the caller's thread, :meth:`Driver.complete` delivers its
outcome. So a client call (start, raise event, status) never waits for a running activity.
Tests drive it one step at a time (:meth:`Driver.step`); the dev server runs a pump
(:mod:`devhost.pump`) that executes activities on worker threads, on the real clock.

Memory: running instances stay in memory; finished ones only up to ``max_finished`` (least
recently used first out). With a :class:`~devhost.instance_store.InstanceStore` every change is
written through, evicted instances stay answerable from disk, and a new driver resumes the
running ones where they were (activities handed out but not completed run again, as the
Durable extension redelivers a work item whose completion was never recorded).

Not covered (by design): the .NET host, the Azure Storage task hub, sub-orchestrations,
entities and ``call_http`` (they raise ``NotImplementedError``).
"""

from __future__ import annotations

import json
import re
import threading
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost import history as h
from devhost.indexing import binding_types, indexed_functions
from devhost.instance_store import InstanceStore

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


class UnknownOrchestrator(DriverError, ValueError):
    """``start_new`` named no orchestrator function of the app (the extension answers 400)."""


class AlreadyRunning(DriverError):
    """``start_new`` for an instance id that is still running (the extension answers 409)."""


@dataclass
class ScheduledActivity:
    task_id: int
    name: str
    input: Any
    max_attempts: int = 1
    retry_interval: timedelta = timedelta(0)
    attempt: int = 1
    #: The instance execution that scheduled it: a completion for an older execution (after
    #: ``continue_as_new``, terminate or a restart of the id) is dropped, as DTFx drops it.
    execution: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "name": self.name,
            "input": self.input,
            "max_attempts": self.max_attempts,
            "retry_ms": int(self.retry_interval / timedelta(milliseconds=1)),
            "attempt": self.attempt,
            "execution": self.execution,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ScheduledActivity:
        return cls(
            raw["task_id"],
            raw["name"],
            raw["input"],
            raw["max_attempts"],
            timedelta(milliseconds=raw["retry_ms"]),
            raw["attempt"],
            raw["execution"],
        )


@dataclass
class _Timer:
    task_id: int
    fire_at: datetime
    retry_of: ScheduledActivity | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "fire_at": self.fire_at.isoformat(),
            "retry_of": self.retry_of.to_dict() if self.retry_of else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> _Timer:
        retry = raw.get("retry_of")
        return cls(
            raw["task_id"],
            datetime.fromisoformat(raw["fire_at"]),
            ScheduledActivity.from_dict(retry) if retry else None,
        )


@dataclass
class Outcome:
    """What an activity execution produced, to be delivered by :meth:`Driver.complete`."""

    result: Any = None
    failure: tuple[str, str] | None = None  # (reason, details)


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
    execution: int = 0
    next_id: int = 0
    known_actions: int = 0
    timer_by_position: dict[int, int] = field(default_factory=dict)
    ready: list[ScheduledActivity] = field(default_factory=list)
    in_flight: dict[int, ScheduledActivity] = field(default_factory=dict)
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

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to resume it (test diagnostics such as ``activity_calls`` are not
        kept). Activities handed out but not completed are saved as ready: at-least-once."""
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "input": self.input,
            "created": self.created.isoformat(),
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "custom_status": self.custom_status,
            "history": self.history,
            "generation": self.generation,
            "execution": self.execution,
            "next_id": self.next_id,
            "known_actions": self.known_actions,
            "timer_by_position": {str(k): v for k, v in self.timer_by_position.items()},
            "ready": [a.to_dict() for a in [*self.in_flight.values(), *self.ready]],
            "timers": [t.to_dict() for t in self.timers.values()],
            "max_history": self.max_history,
            "total_events": self.total_events,
            "last_updated": self.last_updated.isoformat() if self.last_updated else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Instance:
        timers = [_Timer.from_dict(t) for t in raw["timers"]]
        return cls(
            instance_id=raw["instance_id"],
            name=raw["name"],
            input=raw["input"],
            created=datetime.fromisoformat(raw["created"]),
            status=raw["status"],
            output=raw["output"],
            error=raw["error"],
            custom_status=raw["custom_status"],
            history=raw["history"],
            generation=raw["generation"],
            execution=raw["execution"],
            next_id=raw["next_id"],
            known_actions=raw["known_actions"],
            timer_by_position={int(k): v for k, v in raw["timer_by_position"].items()},
            ready=[ScheduledActivity.from_dict(a) for a in raw["ready"]],
            timers={t.task_id: t for t in timers},
            max_history=raw["max_history"],
            total_events=raw["total_events"],
            last_updated=(
                datetime.fromisoformat(raw["last_updated"]) if raw["last_updated"] else None
            ),
        )


class Driver:
    def __init__(
        self,
        app: Any,
        *,
        schema: int = 0,
        start: datetime | None = None,
        realtime: bool = False,
        store: InstanceStore | None = None,
        max_finished: int = 1000,
    ) -> None:
        self.schema = schema
        self.realtime = realtime
        self.store = store
        self.max_finished = max_finished
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        #: Instances in memory: every running one, and finished ones up to ``max_finished``.
        self.instances: dict[str, Instance] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._executions = 0
        self.lock = threading.RLock()
        #: Set whenever work may have become due (new activity, new timer): the pump waits on it.
        self.wakeup = threading.Event()
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

    # -- persistence -------------------------------------------------------------------------
    def resume_from_store(self) -> list[str]:
        """Load every running instance from the store (after a restart). Returns their ids."""
        if self.store is None:
            return []
        with self.lock:
            resumed = []
            for raw in self.store.load_running():
                inst = Instance.from_dict(raw)
                self.instances[inst.instance_id] = inst
                self._executions = max(self._executions, inst.execution)
                resumed.append(inst.instance_id)
            self.wakeup.set()
            return resumed

    def _lookup(self, instance_id: str) -> Instance | None:
        inst = self.instances.get(instance_id)
        if inst is None and self.store is not None:
            raw = self.store.load(instance_id)
            if raw is not None:
                inst = Instance.from_dict(raw)
                self.instances[instance_id] = inst
                self._changed(inst, persist=False)
        elif inst is not None and instance_id in self._finished:
            self._finished.move_to_end(instance_id)
        return inst

    def _changed(self, inst: Instance, *, persist: bool = True) -> None:
        """After every change: write through, and bound the finished instances in memory."""
        if persist and self.store is not None:
            self.store.save(inst.instance_id, inst.to_dict(), running=inst.is_running)
        if inst.is_running:
            self._finished.pop(inst.instance_id, None)
            return
        self._finished[inst.instance_id] = None
        self._finished.move_to_end(inst.instance_id)
        while len(self._finished) > self.max_finished:
            evicted, _ = self._finished.popitem(last=False)
            self.instances.pop(evicted, None)

    # -- client operations -------------------------------------------------------------------
    def start_new(self, name: str, instance_id: str, input_: Any) -> str:
        with self.lock:
            if name not in self.orchestrators:
                raise UnknownOrchestrator(f"no orchestrator named {name!r}")
            existing = self._lookup(instance_id)
            if existing is not None and existing.is_running:
                raise AlreadyRunning(f"instance {instance_id} is already running")
            inst = Instance(instance_id, name, input_, created=self.now())
            self.instances[instance_id] = inst
            self._begin_generation(inst, input_)
            self._changed(inst)
            return instance_id

    def raise_event(self, instance_id: str, name: str, data: Any) -> bool:
        """Deliver an event. False when the instance has finished (the extension drops the event
        and answers 410); ``KeyError`` when there is no such instance."""
        with self.lock:
            inst = self._lookup(instance_id)
            if inst is None:
                raise KeyError(instance_id)
            if not inst.is_running:
                return False
            self._episode(inst, [h.event_raised(self.now(), name, data)])
            self._changed(inst)
            return True

    def terminate(self, instance_id: str, reason: str) -> bool:
        """False when it had finished already; ``KeyError`` when there is no such instance."""
        with self.lock:
            inst = self._lookup(instance_id)
            if inst is None:
                raise KeyError(instance_id)
            if not inst.is_running:
                return False
            inst.status, inst.output = "Terminated", reason
            inst.last_updated = self.now()
            inst.ready.clear()
            inst.in_flight.clear()
            inst.timers.clear()
            self._changed(inst)
            return True

    def purge(self, instance_id: str) -> int:
        with self.lock:
            inst = self._lookup(instance_id)
            if inst is None or inst.is_running:
                return 0
            self.instances.pop(instance_id, None)
            self._finished.pop(instance_id, None)
            if self.store is not None:
                self.store.delete(instance_id)
            return 1

    def status(self, instance_id: str) -> Instance | None:
        """The instance (from memory or the store). Callers must treat it as read-only."""
        with self.lock:
            return self._lookup(instance_id)

    def list_instances(self) -> list[Instance]:
        """Every instance in memory and in the store (for the management API's query route)."""
        with self.lock:
            found = dict(self.instances)
            if self.store is not None:
                for instance_id in self.store.ids():
                    if instance_id not in found:
                        raw = self.store.load(instance_id)
                        if raw is not None:
                            found[instance_id] = Instance.from_dict(raw)
            return list(found.values())

    # -- running -----------------------------------------------------------------------------
    def take_ready(self, limit: int | None = None) -> list[tuple[str, ScheduledActivity]]:
        """Hand out ready activities (they count as in flight until :meth:`complete`)."""
        with self.lock:
            taken: list[tuple[str, ScheduledActivity]] = []
            for inst in list(self.instances.values()):
                while inst.is_running and inst.ready and (limit is None or len(taken) < limit):
                    act = inst.ready.pop(0)
                    inst.in_flight[act.task_id] = act
                    inst.activity_calls.append((act.name, act.input, act.attempt))
                    taken.append((inst.instance_id, act))
            return taken

    def execute(self, act: ScheduledActivity) -> Outcome:
        """Run one activity on the calling thread, without the lock."""
        try:
            if self.activity_hook is not None:
                self.activity_hook(act.name, act.input, act.attempt)
            result = self.activities[act.name](act.input)
            json.dumps(result)
            if self.after_activity_hook is not None:
                self.after_activity_hook(act.name, act.input, act.attempt)
        except Exception as exc:  # noqa: BLE001 - delivered to the orchestrator as TaskFailed
            return Outcome(failure=(f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))
        return Outcome(result=result)

    def complete(self, instance_id: str, act: ScheduledActivity, outcome: Outcome) -> None:
        """Deliver an activity's outcome (dropped if its execution is no longer current)."""
        with self.lock:
            inst = self.instances.get(instance_id)
            if inst is None or inst.in_flight.get(act.task_id) is not act:
                return  # terminated, restarted or purged meanwhile: this work item is stale
            del inst.in_flight[act.task_id]
            if not inst.is_running or act.execution != inst.execution:
                self._changed(inst)
                return
            now = self.now()
            if outcome.failure is None:
                self._episode(inst, [h.task_completed(now, act.task_id, outcome.result)])
            else:
                reason, details = outcome.failure
                self._episode(inst, [h.task_failed(now, act.task_id, reason, details)])
                if inst.is_running and act.max_attempts > 1:
                    timer_id = self._take_id(inst)
                    inst.timers[timer_id] = _Timer(timer_id, now + act.retry_interval, act)
                    self.wakeup.set()
            self._changed(inst)

    def fire_due_timers(self) -> int:
        """Fire every timer that is due now. Returns how many fired."""
        fired = 0
        with self.lock:
            while True:
                due = self._next_timer()
                if due is None or due[1].fire_at > self.now():
                    return fired
                self._fire(*due)
                self._changed(due[0])
                fired += 1

    def next_timer_at(self) -> datetime | None:
        with self.lock:
            due = self._next_timer()
            return due[1].fire_at if due else None

    def step(self) -> bool:
        """Do one unit of due work (an activity, or a timer due now). False when idle."""
        taken = self.take_ready(limit=1)
        if taken:
            instance_id, act = taken[0]
            self.complete(instance_id, act, self.execute(act))
            return True
        with self.lock:
            due = self._next_timer()
            if due is not None and due[1].fire_at <= self.now():
                self._fire(*due)
                self._changed(due[0])
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
        self._executions += 1
        inst.execution = self._executions
        inst.input = input_
        inst.history = []
        inst.next_id = inst.known_actions = 0
        inst.timer_by_position.clear()
        inst.ready.clear()
        inst.in_flight.clear()
        inst.timers.clear()
        inst.status = "Running"
        self._episode(inst, [h.execution_started(now, inst.name, json.dumps(input_))])

    def _fire(self, inst: Instance, timer: _Timer) -> None:
        del inst.timers[timer.task_id]
        self._episode(inst, [h.timer_fired(self.now(), timer.task_id, timer.fire_at)])
        act = timer.retry_of
        if act is not None and inst.is_running and act.attempt < act.max_attempts:
            retry = ScheduledActivity(
                self._take_id(inst),
                act.name,
                act.input,
                act.max_attempts,
                act.retry_interval,
                act.attempt + 1,
                inst.execution,
            )
            inst.history.append(h.task_scheduled(self.now(), retry.task_id, retry.name))
            inst.total_events += 1
            inst.ready.append(retry)
            self.wakeup.set()

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
            inst.in_flight.clear()
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
            inst.in_flight.clear()
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
                act = ScheduledActivity(
                    self._take_id(inst),
                    action["functionName"],
                    json.loads(action["input"]) if action.get("input") is not None else None,
                    max_attempts=int(retry.get("maxNumberOfAttempts", 1)),
                    retry_interval=timedelta(
                        milliseconds=int(retry.get("firstRetryIntervalInMilliseconds", 0))
                    ),
                    execution=inst.execution,
                )
                if act.name not in self.activities:
                    raise DriverError(f"no activity named {act.name!r}")
                inst.history.append(h.task_scheduled(now, act.task_id, act.name))
                inst.total_events += 1
                inst.ready.append(act)
                self.wakeup.set()
            elif kind == CREATE_TIMER:
                timer_id = self._take_id(inst)
                fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
                inst.timer_by_position[position] = timer_id
                if not action.get("isCanceled"):
                    inst.timers[timer_id] = _Timer(timer_id, fire_at)
                    self.wakeup.set()
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
