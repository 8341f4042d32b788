"""Functions get the SDK's real ``DurableOrchestrationClient``, built by the SDK's own wrapper
from a host-shaped binding value, and every call it makes travels over loopback HTTP to the dev
host's management API, which wants the system key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from azure.durable_functions import DurableOrchestrationClient
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from devhost.binding import RPC_USER, client_binding, durable_client
from devhost.driver import Driver
from devhost.http_host import FunctionHost
from devhost.loopback import DurableHttpHost
from devhost.worker import run_in_worker
from tests.devhost import tiny_app


@pytest.fixture
def tiny_driver() -> Driver:
    return Driver(tiny_app.app)


@pytest.fixture
def host(tiny_driver: Driver) -> Iterator[DurableHttpHost]:
    with DurableHttpHost(tiny_driver) as served:
        yield served


def test_the_binding_value_has_the_hosts_shape() -> None:
    payload = json.loads(client_binding("http://127.0.0.1:7071", "s3cr3t", hub="hub1"))
    assert set(payload) == {
        "taskHubName",
        "connectionName",
        "creationUrls",
        "managementUrls",
        "baseUrl",
        "requiredQueryStringParameters",
        "rpcBaseUrl",
        "httpBaseUrl",
        "maxGrpcMessageSizeInBytes",
    }
    assert payload["taskHubName"] == "hub1"
    assert payload["baseUrl"] == "http://127.0.0.1:7071/runtime/webhooks/durabletask"
    assert payload["requiredQueryStringParameters"] == "code=s3cr3t"
    assert payload["managementUrls"]["id"] == "INSTANCEID"
    assert payload["managementUrls"]["sendEventPostUri"] == (
        "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/INSTANCEID/raiseEvent/"
        "{eventName}?taskHub=hub1&connection=Storage&code=s3cr3t"
    )
    assert payload["creationUrls"]["createNewInstancePostUri"].endswith(
        "/orchestrators/{functionName}[/{instanceId}]?code=s3cr3t"
    )
    assert payload["rpcBaseUrl"] == (
        f"http://{RPC_USER}:s3cr3t@127.0.0.1:7071/runtime/webhooks/durabletask/"
    )
    # The SDK parses it (what the worker does with the binding's string).
    client = DurableOrchestrationClient(json.dumps(payload))
    assert client._orchestration_bindings.rpc_base_url == payload["rpcBaseUrl"]


def test_http_functions_receive_the_real_client(tiny_driver: Driver, host) -> None:
    functions = FunctionHost(tiny_app.app, host.binding)
    response = asyncio.run(
        functions.request("POST", "/start/echo/e1", body=json.dumps({"x": [1, 2]}).encode())
    )
    assert response.status_code == 200, response.get_body()
    body = json.loads(response.get_body())
    assert body == {
        "client": "azure.durable_functions.models.DurableOrchestrationClient."
        "DurableOrchestrationClient",
        "id": "e1",
    }
    # The start went over HTTP into the driver, with the input decoded as the worker would.
    assert tiny_driver.instances["e1"].input == {"x": [1, 2]}
    tiny_driver.run_until_idle()
    assert tiny_driver.instances["e1"].output == {"x": [1, 2]}


def test_every_client_call_the_app_makes_works_over_http(tiny_driver: Driver, host) -> None:
    client = durable_client(host.binding)

    async def scenario() -> None:
        assert await client.start_new("waiter", "w1", None) == "w1"
        status = await client.get_status("w1")
        assert status.runtime_status is OrchestrationRuntimeStatus.Running
        assert status.instance_id == "w1" and status.name == "waiter"
        # The SDK serializes the data before posting it as JSON, so (as on Azure, see
        # azure-functions-durable-python#295) the orchestrator receives the JSON text.
        await client.raise_event("w1", "go", {"by": "test"})

    run_in_worker(scenario())
    tiny_driver.run_until_idle()
    assert tiny_driver.instances["w1"].output == {"got": '{"by": "test"}'}

    async def after() -> None:
        done = await client.get_status("w1")
        assert done.runtime_status is OrchestrationRuntimeStatus.Completed
        assert done.output == {"got": '{"by": "test"}'}
        with pytest.raises(Exception, match="is gone"):  # the extension's 410
            await client.raise_event("w1", "go", {})
        with pytest.raises(Exception, match="No instance"):
            await client.raise_event("nope", "go", {})
        await client.start_new("waiter", "w2", None)
        await client.terminate("w2", "operator")
        assert (await client.get_status("w2")).runtime_status is (
            OrchestrationRuntimeStatus.Terminated
        )
        assert (await client.purge_instance_history("w1")).instances_deleted == 1
        assert (await client.purge_instance_history("w1")).instances_deleted == 0
        missing = await client.get_status("w1")
        assert missing.runtime_status is None and not missing
        with pytest.raises(Exception, match="no orchestrator named"):
            await client.start_new("not_there", "x1", None)

    run_in_worker(after())


def test_a_binding_without_the_key_is_refused(tiny_driver: Driver, host) -> None:
    wrong = durable_client(client_binding(host.base_url, "not-the-key"))
    with pytest.raises(Exception, match="401"):
        run_in_worker(wrong.raise_event("w1", "go", {}))
    with pytest.raises(Exception, match="401"):
        run_in_worker(wrong.get_status("w1"))
    with pytest.raises(Exception, match="unauthorized"):
        run_in_worker(wrong.start_new("echo", "e9", None))
    assert "e9" not in tiny_driver.instances
