"""The ``durableClient`` binding value, shaped as the Durable extension's ``BindingHelper`` writes
it for out-of-process workers (protocol v1, HTTP + JSON), so the app's functions receive the
real :class:`azure.durable_functions.DurableOrchestrationClient` built from it.

What the SDK (1.7) reads: ``taskHubName``, ``creationUrls``, ``managementUrls`` (for the
check-status payloads) and ``rpcBaseUrl``, the base that every client call is appended to
(``orchestrators/{name}/{id}``, ``instances/{id}``, ``.../raiseEvent/{event}``, ...). The other
keys are passed through as the host passes them.

The system key: on Azure the public webhook URLs carry ``code=<durabletask_extension key>`` (the
payload's ``requiredQueryStringParameters``), while ``rpcBaseUrl`` points at an unauthenticated
listener on the instance's loopback that nothing outside the sandbox can reach. A developer
machine's loopback is shared by every local process, so the dev host serves the management API
only with the key, and because the SDK builds its RPC URLs by appending paths and query strings
to ``rpcBaseUrl`` (no header hook), the key rides in that URL's userinfo: aiohttp, the SDK's HTTP
client, sends it as HTTP Basic credentials (password = the system key) and strips it from the URL
it logs and raises with.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote, urlsplit

from azure.durable_functions import DurableOrchestrationClient

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
#: The user name in ``rpcBaseUrl``'s userinfo; the dev host checks only the password.
RPC_USER = "durabletask"
INSTANCE_PLACEHOLDER = "INSTANCEID"
DEFAULT_CONNECTION = "Storage"


def task_hub() -> str:
    """The hub name host.json resolves (``%FOUNDRY_SERVICE_TASK_HUB%``)."""
    return os.environ.get("FOUNDRY_SERVICE_TASK_HUB", "").strip() or "foundrydev"


def client_binding(base_url: str, system_key: str, *, hub: str | None = None) -> str:
    """The JSON string the host passes for a ``durableClient`` binding of an app served on
    ``base_url`` (``http://127.0.0.1:<port>``)."""
    hub = hub or task_hub()
    origin = base_url.rstrip("/")
    webhook = origin + WEBHOOK_PATH
    code = "code=" + quote(system_key, safe="")
    suffix = f"taskHub={quote(hub, safe='')}&connection={DEFAULT_CONNECTION}&{code}"
    instance = f"{webhook}/instances/{INSTANCE_PLACEHOLDER}"
    parts = urlsplit(origin)
    rpc = f"{parts.scheme}://{RPC_USER}:{quote(system_key, safe='')}@{parts.netloc}{WEBHOOK_PATH}/"
    return json.dumps(
        {
            "taskHubName": hub,
            "connectionName": None,
            "creationUrls": {
                "createNewInstancePostUri": (
                    f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]?{code}"
                ),
                "createAndWaitOnNewInstancePostUri": (
                    f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
                    f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{code}"
                ),
            },
            "managementUrls": management_urls(instance, INSTANCE_PLACEHOLDER, suffix),
            "baseUrl": webhook,
            "requiredQueryStringParameters": code,
            "rpcBaseUrl": rpc,
            "httpBaseUrl": None,
            "maxGrpcMessageSizeInBytes": None,
        }
    )


def management_urls(instance_url: str, instance_id: str, suffix: str) -> dict[str, str]:
    """The extension's ``HttpManagementPayload`` for one instance URL and query suffix."""
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance_url}?{suffix}",
        "sendEventPostUri": f"{instance_url}/raiseEvent/{{eventName}}?{suffix}",
        "terminatePostUri": f"{instance_url}/terminate?reason={{text}}&{suffix}",
        "rewindPostUri": f"{instance_url}/rewind?reason={{text}}&{suffix}",
        "purgeHistoryDeleteUri": f"{instance_url}?{suffix}",
        "restartPostUri": f"{instance_url}/restart?{suffix}",
        "suspendPostUri": f"{instance_url}/suspend?reason={{text}}&{suffix}",
        "resumePostUri": f"{instance_url}/resume?reason={{text}}&{suffix}",
    }


def durable_client(binding: str) -> DurableOrchestrationClient:
    """The SDK's client from a binding value, as the SDK's own ``durable_client_input`` wrapper
    builds it (for callers outside a function: tests, tools)."""
    return DurableOrchestrationClient(binding)
