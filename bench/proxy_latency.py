"""First-byte latency the LLM proxy adds: the time from sending a streaming ``/v1/messages``
request to holding the first body byte, through the proxy (the deployed ASGI app on uvicorn,
token check against Azurite included) and straight to the fake upstream, interleaved, on one
keep-alive client each. ``python -m bench.proxy_latency`` runs it alone (own Azurite)."""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.config.settings import Settings  # noqa: E402
from shared.domain.ids import new_job_id  # noqa: E402
from shared.domain.models import JobRecord  # noqa: E402
from shared.llm_proxy import LlmProxy, ProxySettings  # noqa: E402
from shared.services import Services  # noqa: E402
from tests.proxy.harness import FakeAnthropic, ServedProxy, message_events  # noqa: E402

REQUEST = {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True, "messages": []}


def _pct_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _first_byte(client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    elapsed: float | None = None
    with client.stream("POST", url, json=REQUEST, headers=headers) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"stream refused: {reply.status_code}")
        for _ in reply.iter_raw():
            if elapsed is None:
                elapsed = time.perf_counter() - start
    if elapsed is None:
        raise RuntimeError("the stream had no body")
    return elapsed


def first_byte_overhead(connection_string: str, *, requests: int = 200) -> dict[str, Any]:
    """p50/p99 first-byte latency direct vs through the proxy over ``requests`` each, in ms."""
    settings = Settings(
        storage_connection_string=connection_string,
        table_prefix="benchproxy" + uuid.uuid4().hex[:6],
        storage_container="bench-proxy-" + uuid.uuid4().hex[:6],
    )
    svc = Services.build(settings)
    job = JobRecord(
        job_id=new_job_id(),
        app_name="bench-proxy",
        owner="bench",
        request_hash="bench",
        created_at=datetime.now(UTC),
        ttl_hours=1,
    )
    svc.jobs.insert_job(job)
    token = svc.tokens.mint(job.job_id, expires_at=datetime.now(UTC) + timedelta(hours=1))
    upstream = FakeAnthropic()
    upstream.stream_events(
        message_events(input_tokens=10, output_tokens=5, text_deltas=2), interval=0
    )
    proxy_settings = ProxySettings(
        upstream_url=upstream.url, api_key="bench-key", max_concurrent=64
    )
    served = ServedProxy(lambda: LlmProxy(svc.tokens, svc.jobs, proxy_settings))
    direct: list[float] = []
    proxied: list[float] = []
    try:
        with httpx.Client(timeout=30) as to_upstream, httpx.Client(timeout=30) as to_proxy:
            via = {"authorization": f"Bearer {token}"}
            for i in range(requests + 10):  # the first ten warm both paths up
                d = _first_byte(to_upstream, f"{upstream.url}/v1/messages", {})
                p = _first_byte(to_proxy, f"{served.url}/v1/messages", via)
                if i >= 10:
                    direct.append(d)
                    proxied.append(p)
        recorded = svc.jobs.get_job(job.job_id).detail["proxy_usage"]["requests"]
    finally:
        served.close()
        upstream.close()
    added = [p - d for p, d in zip(proxied, direct, strict=True)]
    return {
        "requests": requests,
        "direct_p50_ms": _pct_ms(direct, 0.5),
        "direct_p99_ms": _pct_ms(direct, 0.99),
        "proxy_p50_ms": _pct_ms(proxied, 0.5),
        "proxy_p99_ms": _pct_ms(proxied, 0.99),
        "added_p50_ms": _pct_ms(added, 0.5),
        "added_p99_ms": _pct_ms(added, 0.99),
        "usage_recorded": recorded,
    }


def summary(row: dict[str, Any]) -> str:
    return (
        f"LLM proxy first byte over {row['requests']} streams: direct p50 "
        f"{row['direct_p50_ms']:.2f} / p99 {row['direct_p99_ms']:.2f} ms, through the proxy p50 "
        f"{row['proxy_p50_ms']:.2f} / p99 {row['proxy_p99_ms']:.2f} ms; added p50 "
        f"{row['added_p50_ms']:.2f} / p99 {row['added_p99_ms']:.2f} ms"
    )


def main() -> None:
    from tests.azurite import start_azurite

    azurite = start_azurite(Path(tempfile.mkdtemp(prefix="foundry-bench-proxy-")))
    try:
        print(summary(first_byte_overhead(azurite.connection_string)))
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
