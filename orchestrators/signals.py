"""What the rest of the app asks of a job's orchestration, through the durable client: start
it, cancel it, tell it the build ended, wake it when a build slot may be free.

The API, the timers and the admin CLI use these instead of restating ``run_job``'s names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from orchestrators import run_job
from orchestrators.state import RunState


class SignalClient(Protocol):
    """The part of ``DurableOrchestrationClient`` used here."""

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any = None,
    ) -> str: ...
    async def raise_event(
        self, instance_id: str, event_name: str, event_data: Any = None
    ) -> None: ...


async def start(client: SignalClient, job_id: str) -> None:
    await client.start_new(
        run_job.NAME, instance_id=job_id, client_input=RunState(job_id).to_dict()
    )


async def cancel(client: SignalClient, job_id: str, *, by: str) -> None:
    await client.raise_event(job_id, run_job.CANCEL_EVENT, {"by": by})


async def build_finished(client: SignalClient, job_id: str, *, by: str) -> None:
    await client.raise_event(job_id, run_job.BUILD_FINISHED_EVENT, {"by": by})


async def wake_queued(client: SignalClient, job_ids: Iterable[str]) -> list[str]:
    """Tell queued jobs a slot may be free; returns the ones reached. A job that is no longer
    running (or not yet started) just misses the event: its own timers still wake it."""
    reached = []
    for job_id in job_ids:
        try:
            await client.raise_event(job_id, run_job.SLOT_FREED_EVENT, {})
            reached.append(job_id)
        except Exception:  # noqa: BLE001, S112 - best effort: the wake-up is an optimisation
            continue
    return reached
