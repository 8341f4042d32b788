"""The per-job LLM auth proxy (Anthropic Messages API shape), streaming.

Builders call ``POST {ANTHROPIC_BASE_URL}/v1/messages`` with ``Authorization: Bearer fb_…``. Only a
live token of an in-flight job passes; the request is checked (size, model, max_tokens, per-token
concurrency, the upstream rate-limit pause) and forwarded with the real credential, which never
leaves this module. The upstream reply is relayed chunk by chunk as it arrives (no buffering), and
its token usage is read from the events as they pass and recorded on the job when the reply ends.

Invariants:
- Everything here runs on one event loop; the only blocking calls (Table storage reads and the
  usage write) run briefly in the default executor, never for the length of a reply.
- A per-token slot is taken before the upstream request and released exactly once, when the relay
  is closed, whatever ended it (upstream done, upstream error, client gone).
- Closing a relay closes the upstream request: a builder that hangs up stops the generation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Protocol

import httpx
from pydantic import Field

from shared.config.env import NOT_FROM_ENV, comma_list, env_var, load, url_base
from shared.domain.json_body import MalformedJson, load_json
from shared.domain.models import IN_FLIGHT_STATUSES, JobRecord
from shared.errors import FoundryError
from shared.storage.proxy_tokens import TokenInfo

log = logging.getLogger("foundry.proxy")
P = "FOUNDRY_SERVICE_"
PROXY_ENV_PREFIX = P + "PROXY_"  # of the ProxySettings fields without a variable of their own
DEFAULT_PRICES = {  # USD per million tokens (input, output), by model prefix; longest match wins
    "claude-opus": (15.0, 75.0),
    "claude-sonnet": (3.0, 15.0),
    "claude-haiku": (0.8, 4.0),
    "claude-": (3.0, 15.0),
}
PASS_HEADERS = (
    "content-type",
    "request-id",
    "retry-after",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-remaining",
)
#: A JSON (non-streaming) reply is kept only to read its usage; past this size it is not kept.
MAX_JSON_USAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ProxySettings:
    """Read by :func:`shared.config.env.load`: ``FOUNDRY_SERVICE_PROXY_`` + the field name unless
    its ``env_var`` names another variable."""

    upstream_url: str = field(
        default="https://api.anthropic.com",
        metadata=env_var(P + "ANTHROPIC_BASE_URL", pre_parse=url_base),
    )
    api_key: str = field(  # a Key Vault reference is no key
        default="", repr=False, metadata=env_var(P + "ANTHROPIC_API_KEY", secret=True)
    )
    model_prefixes: tuple[str, ...] = field(
        default=("claude-",), metadata=env_var(pre_parse=comma_list)
    )
    max_body_bytes: Annotated[int, Field(ge=1)] = 4 * 1024 * 1024
    max_output_tokens: Annotated[int, Field(ge=1)] = 64_000
    max_concurrent: Annotated[int, Field(ge=1)] = 64
    anthropic_version: str = field(default="2023-06-01", metadata=NOT_FROM_ENV)
    #: Longest silence between two upstream chunks (and for the connect), not a total: a reply
    #: may stream for as long as the upstream keeps sending.
    timeout_secs: float = field(default=600.0, metadata=NOT_FROM_ENV)
    prices: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_PRICES), metadata=NOT_FROM_ENV
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        return load(cls, os.environ if environ is None else environ, prefix=PROXY_ENV_PREFIX)


class TokenVerifier(Protocol):
    def verify(self, token: str) -> TokenInfo | None: ...


class JobRows(Protocol):
    def find_job(self, job_id: str) -> JobRecord | None: ...

    def update(self, job_id: str, mutate: Any) -> JobRecord: ...


@dataclass(frozen=True)
class ProxyReply:
    """A complete reply the proxy makes itself (a refusal); small, sent in one piece."""

    status: int
    body: bytes
    headers: dict[str, str]


def _deny(
    status: int,
    reason: str,
    message: str = "proxy request denied",
    headers: dict[str, str] | None = None,
) -> ProxyReply:
    body = json.dumps({"type": "error", "error": reason, "message": message}).encode()
    return ProxyReply(status, body, {"content-type": "application/json", **(headers or {})})


class UsageMeter:
    """Token usage read from a reply as its chunks pass, without holding an SSE stream.

    SSE: ``message_start`` carries the input count, ``message_delta`` the output count so far;
    Anthropic's counts are cumulative, so the largest seen is the total. JSON: the ``usage`` object
    of the whole body (kept up to :data:`MAX_JSON_USAGE_BYTES`). Chunk boundaries may fall
    anywhere, even inside a line or a UTF-8 sequence.
    """

    def __init__(self, content_type: str) -> None:
        self.sse = "text/event-stream" in content_type
        self.input_tokens = 0
        self.output_tokens = 0
        self._partial = b""
        self._json: bytearray | None = bytearray()

    def feed(self, chunk: bytes) -> None:
        if not self.sse:
            if self._json is not None:
                self._json += chunk
                if len(self._json) > MAX_JSON_USAGE_BYTES:
                    self._json = None
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        try:
            event = json.loads(line[5:])
        except ValueError:
            return
        if isinstance(event, dict):
            message = event.get("message")
            self._count((message or {}).get("usage") if isinstance(message, dict) else None)
            self._count(event.get("usage"))

    def _count(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.input_tokens = max(self.input_tokens, _int(usage.get("input_tokens")))
            self.output_tokens = max(self.output_tokens, _int(usage.get("output_tokens")))

    def totals(self) -> tuple[int, int]:
        if self.sse:
            if self._partial:  # a last event without its newline
                self._line(self._partial.rstrip(b"\r"))
                self._partial = b""
            return self.input_tokens, self.output_tokens
        if self._json is None:
            log.warning("JSON reply too large to read its usage; not counted")
            return 0, 0
        try:
            usage = json.loads(bytes(self._json)).get("usage") or {}
        except (ValueError, AttributeError):
            return 0, 0
        return _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Relay:
    """One upstream reply on its way to the builder. Iterate :meth:`chunks`, then always
    :meth:`aclose` (idempotent): it closes the upstream request, frees the token's slot and
    records the usage seen (2xx replies only)."""

    def __init__(
        self, proxy: LlmProxy, response: httpx.Response, *, token_hash: str, job_id: str, model: str
    ) -> None:
        self._proxy, self._response = proxy, response
        self._token_hash, self._job_id, self._model = token_hash, job_id, model
        self.status = response.status_code
        self.headers = {k: v for k, v in response.headers.items() if k.lower() in PASS_HEADERS}
        self.meter = UsageMeter(response.headers.get("content-type", ""))
        self.complete = False
        self._closed = False

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self._response.aiter_bytes():
                self.meter.feed(chunk)
                yield chunk
            self.complete = True
        except httpx.HTTPError as exc:
            # Headers are gone already: the builder sees a cut stream, as it would from Anthropic.
            log.warning("upstream stream broke off: %s", type(exc).__name__)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._response.aclose()
        finally:
            self._proxy._release(self._token_hash)
            if 200 <= self.status < 300:
                if not self.complete:
                    log.info("reply ended early for job_id=%s; recording usage seen", self._job_id)
                await asyncio.to_thread(
                    self._proxy._record_usage, self._job_id, self._model, self.meter.totals()
                )


class LlmProxy:
    def __init__(
        self,
        tokens: TokenVerifier,
        jobs: JobRows,
        settings: ProxySettings,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.tokens, self.jobs, self.settings = tokens, jobs, settings
        self.http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_secs, connect=10.0),
            # The per-token limit bounds what is open; a pool cap would queue streams silently.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        self._in_flight: dict[str, int] = {}
        self._paused_until = 0.0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def open(self, headers: Mapping[str, str], body: bytes) -> ProxyReply | Relay:
        """Check the request and start it upstream. A :class:`Relay` means the upstream answered
        (any status) and its body is ready to stream; a :class:`ProxyReply` is a refusal."""
        auth = headers.get("authorization") or headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return _deny(401, "unauthorized")
        try:
            info = await asyncio.to_thread(self._authorize, auth[len("Bearer ") :].strip())
        except FoundryError as exc:
            log.warning("token check failed: %s", type(exc).__name__)
            return _deny(503, "unavailable", "token store unavailable; retry", {"retry-after": "5"})
        if info is None:
            return _deny(401, "unauthorized")
        if not self.settings.api_key:
            return _deny(503, "proxy_unconfigured", "the LLM credential is not configured")
        if len(body) > self.settings.max_body_bytes:
            return _deny(413, "body_too_large")
        try:  # the parse guard: nesting, huge numbers, surrogates are refusals, not crashes
            request = load_json(body)
        except MalformedJson:
            return _deny(400, "invalid_request", "body is not JSON")
        if not isinstance(request, dict):
            return _deny(400, "invalid_request", "body must be a JSON object")
        model = request.get("model")
        if not isinstance(model, str) or not model.startswith(self.settings.model_prefixes):
            return _deny(403, "model_not_allowed")
        max_tokens = request.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens > self.settings.max_output_tokens:
            return _deny(400, "output_tokens_too_high")
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            return _deny(
                429,
                "rate_limited",
                "upstream rate limit reached; dispatch paused",
                {"retry-after": str(max(1, int(wait + 0.999)))},
            )
        if not self._acquire(info.token_hash):
            return _deny(429, "too_many_concurrent_requests")
        try:
            response = await self._send(headers, body)
        except httpx.HTTPError as exc:
            self._release(info.token_hash)
            log.warning("upstream request failed: %s", type(exc).__name__)
            return _deny(502, "upstream_error", "anthropic request failed")
        except BaseException:  # canceled (the builder hung up) while waiting for the headers
            self._release(info.token_hash)
            raise
        if response.status_code == 429:
            retry = response.headers.get("retry-after", "")
            self._paused_until = time.monotonic() + (int(retry) if retry.isdigit() else 60)
        return Relay(self, response, token_hash=info.token_hash, job_id=info.job_id, model=model)

    def _authorize(self, token: str) -> TokenInfo | None:
        """Blocking (Table reads): the token's info if it is live and its job in flight."""
        info = self.tokens.verify(token)
        if info is None:
            return None
        job = self.jobs.find_job(info.job_id)
        if job is None or job.status not in IN_FLIGHT_STATUSES:
            return None
        return info

    async def _send(self, headers: Mapping[str, str], body: bytes) -> httpx.Response:
        lower = {k.lower(): v for k, v in headers.items()}
        outgoing = {
            "x-api-key": self.settings.api_key,
            "anthropic-version": lower.get("anthropic-version", self.settings.anthropic_version),
            "content-type": "application/json",
            # Relayed as is: a compressed stream would need decoding before it could be counted.
            "accept-encoding": "identity",
        }
        if lower.get("anthropic-beta"):
            outgoing["anthropic-beta"] = ",".join(
                dict.fromkeys(b.strip() for b in lower["anthropic-beta"].split(",") if b.strip())
            )
        request = self.http.build_request(
            "POST", f"{self.settings.upstream_url}/v1/messages", content=body, headers=outgoing
        )
        return await self.http.send(request, stream=True)

    def _acquire(self, key: str) -> bool:
        if self._in_flight.get(key, 0) >= self.settings.max_concurrent:
            return False
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return True

    def _release(self, key: str) -> None:
        self._in_flight[key] -= 1
        if not self._in_flight[key]:
            del self._in_flight[key]

    def in_flight(self) -> int:
        """Replies open right now, all tokens together."""
        return sum(self._in_flight.values())

    def _record_usage(self, job_id: str, model: str, totals: tuple[int, int]) -> None:
        tokens_in, tokens_out = totals
        price_in, price_out = self._price(model)
        cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000

        def mutate(job: Any) -> Any:
            usage = dict(job.detail.get("proxy_usage") or {})
            usage["requests"] = int(usage.get("requests", 0)) + 1
            usage["input_tokens"] = int(usage.get("input_tokens", 0)) + tokens_in
            usage["output_tokens"] = int(usage.get("output_tokens", 0)) + tokens_out
            usage["cost_usd"] = round(float(usage.get("cost_usd", 0.0)) + cost, 6)
            return replace(job, detail={**job.detail, "proxy_usage": usage})

        try:
            self.jobs.update(job_id, mutate)
        except Exception:
            log.exception("could not record proxy usage for job_id=%s", job_id)

    def _price(self, model: str) -> tuple[float, float]:
        matches = [p for p in self.settings.prices if model.startswith(p)]
        return self.settings.prices[max(matches, key=len)] if matches else (0.0, 0.0)
