"""A durable client over the in-process :class:`~devhost.driver.Driver`, with the methods of
``DurableOrchestrationClient`` that the app uses (same names and argument order)."""

from __future__ import annotations

from typing import Any

from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.OrchestrationRuntimeStatus import (
    OrchestrationRuntimeStatus,
)
from azure.durable_functions.models.PurgeHistoryResult import PurgeHistoryResult

from devhost.driver import Driver, DriverError
from devhost.history import iso


class InProcessDurableClient:
    def __init__(self, driver: Driver, *, drive: bool = True) -> None:
        self.driver = driver
        #: Run due work right after each call (tests); the dev server pumps in a thread instead.
        self.drive = drive

    def _settle(self) -> None:
        if self.drive:
            self.driver.run_until_idle()

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any = None,
        version: str | None = None,
    ) -> str:
        if instance_id is None:
            raise DriverError("the app always passes an instance id")
        self.driver.start_new(orchestration_function_name, instance_id, client_input)
        self._settle()
        return instance_id

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        try:
            self.driver.raise_event(instance_id, event_name, event_data)
        except KeyError:
            raise Exception(f"No instance with ID '{instance_id}' found.") from None
        self._settle()

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus:
        inst = self.driver.instances.get(instance_id)
        if inst is None:
            return DurableOrchestrationStatus(message=f"instance {instance_id} not found")
        return DurableOrchestrationStatus(
            name=inst.name,
            instanceId=inst.instance_id,
            createdTime=iso(inst.created),
            lastUpdatedTime=iso(inst.last_updated or inst.created),
            input=inst.input,
            output=inst.output,
            runtimeStatus=OrchestrationRuntimeStatus(inst.status),
            customStatus=inst.custom_status,
            history=list(inst.history) if show_history else None,
        )

    async def terminate(self, instance_id: str, reason: str) -> None:
        self.driver.terminate(instance_id, reason)

    async def purge_instance_history(self, instance_id: str) -> PurgeHistoryResult:
        return PurgeHistoryResult(instancesDeleted=self.driver.purge(instance_id))
