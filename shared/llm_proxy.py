"""The per-job LLM auth proxy (Anthropic Messages API shape).

Builders call ``POST {ANTHROPIC_BASE_URL}/v1/messages`` with ``Authorization: Bearer fb_…``. Only a
live token of an in-flight job passes; the request is checked (size, model, max_tokens, per-token
concurrency, the upstream rate-limit pause) and forwarded with the real credential, which never
leaves this module. Usage is recorded on the job.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from shared.config.settings import secret_setting
from shared.domain.json_body import MalformedJson, load_json
from shared.domain.models import IN_FLIGHT_STATUSES
from shared.services import Services

log = logging.getLogger("foundry.proxy")
P = "FOUNDRY_SERVICE_"
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


@dataclass(frozen=True)
class ProxySettings:
    upstream_url: str = "https://api.anthropic.com"
    api_key: str = field(default="", repr=False)
    model_prefixes: tuple[str, ...] = ("claude-",)
    max_body_bytes: int = 4 * 1024 * 1024
    max_output_tokens: int = 64_000
    max_concurrent: int = 64
    anthropic_version: str = "2023-06-01"
    timeout_secs: float = 600.0
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        env = os.environ if environ is None else environ

        def num(name: str, default: int) -> int:
            raw = env.get(P + name, "").strip()
            return int(raw) if raw.isdigit() else default

        prefixes = tuple(
            p.strip()
            for p in env.get(P + "PROXY_MODEL_PREFIXES", "claude-").split(",")
            if p.strip()
        )
        return cls(
            upstream_url=(
                env.get(P + "ANTHROPIC_BASE_URL", "").strip() or "https://api.anthropic.com"
            ).rstrip("/"),
            api_key=secret_setting(env, P + "ANTHROPIC_API_KEY"),  # a Key Vault ref is no key
            model_prefixes=prefixes or ("claude-",),
            max_body_bytes=num("PROXY_MAX_BODY_BYTES", 4 * 1024 * 1024),
            max_output_tokens=num("PROXY_MAX_OUTPUT_TOKENS", 64_000),
            max_concurrent=num("PROXY_MAX_CONCURRENT", 64),
        )


@dataclass(frozen=True)
class ProxyReply:
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


class LlmProxy:
    def __init__(
        self, services: Services, settings: ProxySettings, client: httpx.Client | None = None
    ) -> None:
        self.svc, self.settings = services, settings
        self.http = client or httpx.Client(timeout=settings.timeout_secs)
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._paused_until = 0.0

    def handle(self, headers: Mapping[str, str], body: bytes) -> ProxyReply:
        auth = headers.get("authorization") or headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return _deny(401, "unauthorized")
        info = self.svc.tokens.verify(auth[len("Bearer ") :].strip())
        if info is None:
            return _deny(401, "unauthorized")
        job = self.svc.jobs.find_job(info.job_id)
        if job is None or job.status not in IN_FLIGHT_STATUSES:
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
            reply = self._forward(headers, body)
        finally:
            self._release(info.token_hash)
        if 200 <= reply.status < 300:
            self._record_usage(info.job_id, model, reply)
        return reply

    def _acquire(self, key: str) -> bool:
        with self._lock:
            if self._in_flight.get(key, 0) >= self.settings.max_concurrent:
                return False
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return True

    def _release(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]

    def _forward(self, headers: Mapping[str, str], body: bytes) -> ProxyReply:
        lower = {k.lower(): v for k, v in headers.items()}
        outgoing = {
            "x-api-key": self.settings.api_key,
            "anthropic-version": lower.get("anthropic-version", self.settings.anthropic_version),
            "content-type": "application/json",
        }
        if lower.get("anthropic-beta"):
            outgoing["anthropic-beta"] = ",".join(
                dict.fromkeys(b.strip() for b in lower["anthropic-beta"].split(",") if b.strip())
            )
        try:
            response = self.http.post(
                f"{self.settings.upstream_url}/v1/messages", content=body, headers=outgoing
            )
        except httpx.HTTPError as exc:
            log.warning("upstream request failed: %s", type(exc).__name__)
            return _deny(502, "upstream_error", "anthropic request failed")
        if response.status_code == 429:
            retry = response.headers.get("retry-after", "")
            seconds = int(retry) if retry.isdigit() else 60
            self._paused_until = time.monotonic() + seconds
        passed = {k: v for k, v in response.headers.items() if k.lower() in PASS_HEADERS}
        return ProxyReply(response.status_code, response.content, passed)

    def _record_usage(self, job_id: str, model: str, reply: ProxyReply) -> None:
        tokens_in, tokens_out = usage_of(reply)
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
            self.svc.jobs.update(job_id, mutate)
        except Exception:
            log.exception("could not record proxy usage for job_id=%s", job_id)

    def _price(self, model: str) -> tuple[float, float]:
        matches = [p for p in self.settings.prices if model.startswith(p)]
        return self.settings.prices[max(matches, key=len)] if matches else (0.0, 0.0)


def usage_of(reply: ProxyReply) -> tuple[int, int]:
    """Token usage from a JSON reply or an SSE stream (message_start + message_delta)."""
    kind = reply.headers.get("content-type", "")
    if "text/event-stream" in kind:
        tokens_in = tokens_out = 0
        for line in reply.body.decode("utf-8", errors="replace").splitlines():
            if not line.startswith("data:"):
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            usage = (event.get("message") or {}).get("usage") or event.get("usage") or {}
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out = max(tokens_out, int(usage.get("output_tokens") or 0))
        return tokens_in, tokens_out
    try:
        usage = json.loads(reply.body).get("usage") or {}
    except (ValueError, AttributeError):
        return 0, 0
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
