"""A minimal Durable Functions app for the dev host's own tests: an HTTP starter with a durable
client binding, orchestrators that echo, wait for an event, or run a slow activity."""

from __future__ import annotations

import json
import time
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Starts an orchestration and reports what kind of client it was handed."""
    instance = await client.start_new(
        req.route_params["name"], req.route_params["instance_id"], req.get_json()
    )
    kind = type(client)
    body = {"client": f"{kind.__module__}.{kind.__qualname__}", "id": instance}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def echo(context: df.DurableOrchestrationContext) -> Any:
    return context.get_input()


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext) -> Any:
    data = yield context.wait_for_external_event("go")
    return {"got": data}


@app.orchestration_trigger(context_name="context")
def napper(context: df.DurableOrchestrationContext) -> Any:
    slept = yield context.call_activity("nap", context.get_input())
    return {"slept": slept}


@app.activity_trigger(input_name="seconds")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
