"""Plain ARM reads for the resource types no pinned SDK covers (Microsoft.Web site config
references, Microsoft.Authorization role assignments and definitions, user-assigned identities).

azure-core's own ``PipelineClient`` with a bearer-token policy on the caller's credential: the
same token, retry and transport code the azure-mgmt clients run on, without adding azure-mgmt-web
or azure-mgmt-authorization for three GETs. Read-only by construction: there is no other verb.
"""

from __future__ import annotations

from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest

#: The token audience of Azure Resource Manager (also when ``arm_url`` points at a test fake).
ARM_SCOPE = "https://management.azure.com/.default"


class ArmReader:
    """GETs against ARM: ``get`` answers ``None`` for a 404, ``list`` follows ``nextLink``.
    Any other failure raises ``HttpResponseError`` with ARM's error code parsed."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        arm_url: str,
        read_timeout: float = 60.0,
        connection_timeout: float = 10.0,
        connection_verify: str | bool = True,
    ) -> None:
        """``connection_verify``: a CA bundle path instead of the system's (tests' loopback
        fake), as for every azure-core transport."""
        policies = [
            HeadersPolicy(),
            UserAgentPolicy(sdk_moniker="foundry-preflight"),
            RetryPolicy(),
            BearerTokenCredentialPolicy(credential, ARM_SCOPE),
        ]
        self._client: PipelineClient[Any, Any] = PipelineClient(
            arm_url.rstrip("/"),
            policies=policies,
            read_timeout=read_timeout,
            connection_timeout=connection_timeout,
            connection_verify=connection_verify,
        )

    def close(self) -> None:
        self._client.close()

    def _send(self, url: str, params: dict[str, str] | None) -> Any:
        response = self._client.send_request(HttpRequest("GET", url, params=params))
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise HttpResponseError(response=response)
        return response.json()

    def get(self, path: str, api_version: str) -> dict[str, Any] | None:
        """The resource at ``path`` (``/subscriptions/...``), or ``None`` when it does not exist."""
        body = self._send(self._client.format_url(path), {"api-version": api_version})
        return dict(body) if body is not None else None

    def list(
        self, path: str, api_version: str, *, odata_filter: str | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a collection, across pages; empty when the parent does not exist."""
        items: list[dict[str, Any]] = []
        url: str | None = self._client.format_url(path)
        query = {"api-version": api_version}
        if odata_filter:
            query["$filter"] = odata_filter
        params: dict[str, str] | None = query
        while url:
            page = self._send(url, params)
            if page is None:
                break
            items.extend(page.get("value") or [])
            url, params = page.get("nextLink"), None  # a next link carries its own query
        return items
