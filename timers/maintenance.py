"""Every minute: TTL reaper, reconciler, orphan sweep and history purge (timers.sweeps)."""

from __future__ import annotations

import asyncio

import azure.durable_functions as df
import azure.functions as func

from shared.services import get_services
from timers.sweeps import run_maintenance

bp = df.Blueprint()
SCHEDULE = "%FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE%"


@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def maintenance(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    # Async because the durable client is; the worker then runs this on its event loop, so the
    # blocking part (a cold start builds the services: network calls) goes to a thread.
    services = await asyncio.to_thread(get_services)
    await run_maintenance(services, client)
