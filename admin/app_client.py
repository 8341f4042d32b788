"""The deployed app, as the operator CLI reaches it over HTTP: the service's ``/v1`` API with an
API key, and the Functions host's admin API (``POST /admin/functions/<name>``, which runs a
non-HTTP function such as the maintenance timer now) with the host's master key.

Keys travel only in headers, never in URLs or messages. Every non-2xx reply becomes a
:class:`~admin.exits.CliError` sorted by the body's stable ``error`` code, else by HTTP status.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from admin.exits import API_ERRORS, CliError, Exit, for_status

#: Functions' header for function, host and master keys.
FUNCTIONS_KEY_HEADER = "x-functions-key"


class AppClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        master_key: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.api_key = api_key
        self.master_key = master_key
        self.http = http or httpx.AsyncClient(timeout=30.0)

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- /v1 ------------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return _json_object(await self._send("GET", "/v1/healthz", auth=False))

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return _json_object(await self._send("POST", "/v1/jobs", json=body))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        # The route takes no body, so a refusal can only be about the job's state.
        reply = await self._send(
            "POST", f"/v1/jobs/{quote(job_id)}/cancel", refusal_means=Exit.CONFLICT
        )
        return _json_object(reply)

    async def delete_preview(self, job_id: str) -> None:
        await self._send("DELETE", f"/v1/jobs/{quote(job_id)}/preview", refusal_means=Exit.CONFLICT)

    # -- the host's admin API -------------------------------------------------------------------
    async def run_function(self, name: str) -> int:
        """Queue one run of a non-HTTP function in the app; the host answers 202 at once."""
        headers = {FUNCTIONS_KEY_HEADER: self.master_key} if self.master_key else {}
        resp = await self._request(
            "POST", f"/admin/functions/{quote(name)}", headers=headers, json={"input": ""}
        )
        if resp.status_code in (401, 403):
            raise CliError(
                Exit.AUTH,
                "unauthorized",
                f"the app refused the master key for /admin/functions/{name}: set "
                "FOUNDRY_ADMIN_MASTER_KEY (az functionapp keys list -g <group> -n <app> "
                "--query masterKey -o tsv)",
            )
        if resp.status_code == 404:
            raise CliError(Exit.NOT_FOUND, "not_found", f"the app has no function named {name}")
        _raise_for_reply(resp, refusal_means=Exit.USAGE)
        return resp.status_code

    # -- plumbing -------------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        json: Any = None,
        refusal_means: Exit = Exit.USAGE,
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if auth:
            if not self.api_key:
                raise CliError(
                    Exit.AUTH,
                    "misconfigured",
                    "this command needs an API key with the jobs:write scope in "
                    "FOUNDRY_ADMIN_API_KEY",
                )
            headers["Authorization"] = f"Bearer {self.api_key}"
        resp = await self._request(method, path, headers=headers, json=json)
        _raise_for_reply(resp, refusal_means=refusal_means)
        return resp

    async def _request(
        self, method: str, path: str, *, headers: dict[str, str], json: Any
    ) -> httpx.Response:
        try:
            return await self.http.request(method, self.base + path, headers=headers, json=json)
        except httpx.TransportError as exc:
            raise CliError(
                Exit.UNAVAILABLE, "unavailable", f"cannot reach {self.base}: {type(exc).__name__}"
            ) from None


def _where(resp: httpx.Response) -> str:
    return f"{resp.request.method} {resp.request.url.path}"


def _json_object(resp: httpx.Response) -> dict[str, Any]:
    """A successful reply's JSON body; a JSON value that is not an object as ``{"value": ...}``."""
    try:
        body = resp.json()
    except ValueError:
        raise CliError(
            Exit.UNAVAILABLE, "bad_reply", f"{_where(resp)}: the reply is not JSON"
        ) from None
    return body if isinstance(body, dict) else {"value": body}


def _raise_for_reply(resp: httpx.Response, *, refusal_means: Exit) -> None:
    if resp.is_success:
        return
    where = _where(resp)
    code, message = f"http_{resp.status_code}", resp.reason_phrase
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code, message = body["error"], str(body.get("message") or message)
    exit_code = API_ERRORS.get(code) or for_status(resp.status_code)
    if code == "validation_error":
        exit_code = refusal_means
    raise CliError(exit_code, code, f"{where}: {resp.status_code} {code}: {message}")
