"""The benchmark: ``python -m bench.run`` (about two minutes). Prints a table, writes
``bench/results.json`` and the latency charts in README.md (``bench.chart``). Everything runs
on loopback: Azurite, the dev server, the clients.

Measures: submit and poll latency (p50/p99) at 1, 10 and 50 concurrent clients; poll latency
against a bare Table point read; orchestration history events and storage calls per job;
log-follow latency (builder appends a line -> visible through ``/logs?cursor=``); dev-server
peak memory; the first-byte latency the LLM proxy adds (``bench/proxy_latency.py``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import chart, proxy_latency  # noqa: E402
from tests.azurite import free_port, start_azurite  # noqa: E402

KEY = "bench-key"
TICK_BUILDER = ROOT / "bench" / "tick_builder.py"
LEVELS = (1, 10, 50)
SUBMITS_PER_LEVEL = 50  # then canceled, so the queue stays within its default cap of 50
POLLS_PER_LEVEL = 300


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def body(tag: str) -> dict[str, Any]:
    return {
        "app_name": f"b-{tag}",
        "owner": "bench",
        "idempotency_key": tag,
        "spec_md": "# bench\n",
        "tasks_md": "- [ ] T1: x\n",
        "org_slug": "bench",
    }


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_level(http: httpx.Client, level: int) -> dict[str, Any]:
    """``level`` clients submit SUBMITS_PER_LEVEL jobs, poll them, then cancel them."""
    ids: list[str] = []
    lock = threading.Lock()

    def submit(_: int) -> float:
        tag = uuid.uuid4().hex[:12]
        start = time.perf_counter()
        resp = http.post("/v1/jobs", json=body(tag))
        elapsed = time.perf_counter() - start
        if resp.status_code != 202:  # a refused submit would skew the numbers: stop the run
            raise RuntimeError(f"submit refused: {resp.status_code} {resp.text}")
        with lock:
            ids.append(resp.json()["job_id"])
        return elapsed

    def poll(i: int) -> float:
        return timed(lambda: http.get(f"/v1/jobs/{ids[i % len(ids)]}").raise_for_status())

    with ThreadPoolExecutor(level) as pool:
        submits = list(pool.map(submit, range(SUBMITS_PER_LEVEL)))
    with ThreadPoolExecutor(level) as pool:
        polls = list(pool.map(poll, range(POLLS_PER_LEVEL)))
    for job_id in ids:
        http.post(f"/v1/jobs/{job_id}/cancel")
    return {
        "clients": level,
        "submit_p50_ms": pct(submits, 0.5),
        "submit_p99_ms": pct(submits, 0.99),
        "poll_p50_ms": pct(polls, 0.5),
        "poll_p99_ms": pct(polls, 0.99),
    }


def latency_levels(base: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(
        base_url=base, headers=headers, timeout=60, limits=httpx.Limits(max_connections=64)
    ) as http:
        return [measure_level(http, level) for level in LEVELS]


def point_read_ms(connection: str, prefix: str, base: str) -> dict[str, float]:
    from azure.data.tables import TableServiceClient

    from shared.domain.ids import newest_first_key

    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        job_id = http.get("/v1/jobs?limit=1").json()["jobs"][0]["job_id"]
        table = TableServiceClient.from_connection_string(connection).get_table_client(
            f"{prefix}jobs"
        )
        reads = [
            timed(lambda: table.get_entity("job", newest_first_key(job_id))) for _ in range(200)
        ]
        polls = [
            timed(lambda: http.get(f"/v1/jobs/{job_id}").raise_for_status()) for _ in range(200)
        ]
    return {
        "point_read_p50_ms": pct(reads, 0.5),
        "poll_p50_ms": pct(polls, 0.5),
        "ratio": pct(polls, 0.5) / pct(reads, 0.5),
    }


def per_job_costs(connection: str, work: Path) -> dict[str, Any]:
    """One job through the in-process driver, counting history events and storage calls."""
    import function_app
    from devhost.driver import Driver
    from shared.config.settings import Settings
    from shared.services import Services, use_services

    calls = {"n": 0}

    def count(request: Any) -> None:
        calls["n"] += 1

    settings = Settings(
        api_keys=KEY,
        storage_connection_string=connection,
        table_prefix="benchjob" + uuid.uuid4().hex[:6],
        storage_container="bench-" + uuid.uuid4().hex[:6],
        local_work_dir=str(work),
        local_builder_command="",
    )
    svc = Services.build(settings, raw_request_hook=count)
    use_services(svc)
    from devhost.client import InProcessDurableClient
    from devhost.http_host import FunctionHost

    driver = Driver(function_app.app)
    host = FunctionHost(function_app.app, InProcessDurableClient(driver, drive=False))
    import asyncio

    calls["n"] = 0
    resp = asyncio.run(
        host.request(
            "POST",
            "/v1/jobs",
            body=json.dumps(body("one")).encode(),
            headers={"authorization": f"Bearer {KEY}"},
        )
    )
    job_id = json.loads(resp.get_body())["job_id"]
    submit_calls = calls["n"]
    inst = driver.run_to_completion(job_id, between_timers=lambda: time.sleep(0.02))
    for ref in svc.backend.list_resources():
        svc.backend.teardown(ref.job_id)
    use_services(None)
    return {
        "status": inst.output.get("status"),
        "history_events": inst.total_events,
        "max_history_length": inst.max_history,
        "generations": inst.generation + 1,
        "storage_calls_submit": submit_calls,
        "storage_calls_total": calls["n"],
    }


def log_follow(base: str) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    lags: list[float] = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        job_id = http.post("/v1/jobs", json={**body("follow"), "app_name": "follow"}).json()[
            "job_id"
        ]
        cursor, deadline = "0", time.time() + 60
        while time.time() < deadline:
            page = http.get(f"/v1/jobs/{job_id}/logs", params={"cursor": cursor}).json()
            now = time.time()
            for event in page["events"]:
                if event.get("event") == "bench_tick":
                    lags.append(now - event["t"])
            cursor = page["next_cursor"]
            if page["complete"]:
                break
            time.sleep(0.1)
    return {
        "lines": len(lags),
        "p50_s": statistics.median(lags) if lags else -1,
        "max_s": max(lags) if lags else -1,
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1.0


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="foundry-bench-"))
    azurite = start_azurite(scratch / "azurite")
    port = free_port()
    prefix = "bench" + uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "FOUNDRY_SERVICE_API_KEYS": KEY,
        "FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "FOUNDRY_SERVICE_TABLE_PREFIX": prefix,
        "FOUNDRY_SERVICE_QUEUE_CAP": "60",
        "FOUNDRY_SERVICE_MAX_CONCURRENT_BUILDS": "1",
        "FOUNDRY_SERVICE_LOCAL_WORK_DIR": str(scratch / "work"),
        "FOUNDRY_SERVICE_LOCAL_BUILDER_COMMAND": f"{sys.executable} {TICK_BUILDER} 40",
    }
    server_log = (scratch / "server.log").open("wb")
    server = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter runs the dev server
        [sys.executable, "-m", "devhost.server", "--port", str(port), "--proxy-port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=server_log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/v1/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        follow = log_follow(base)  # first, while the build slot is free
        levels = latency_levels(base)
        ratio = point_read_ms(azurite.connection_string, prefix, base)
        costs = per_job_costs(azurite.connection_string, scratch / "inproc")
        memory = peak_rss_mb(server.pid)
        llm_proxy = proxy_latency.first_byte_overhead(azurite.connection_string)
    finally:
        server.terminate()
        server.wait(10)
        server_log.close()
        azurite.stop()
    results = {
        "levels": levels,
        "poll_vs_point_read": ratio,
        "per_job": costs,
        "log_follow": follow,
        "dev_server_peak_rss_mb": memory,
        "llm_proxy_first_byte": llm_proxy,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    chart.write_readme(results)  # the README's latency charts follow the new results
    print("| clients | submit p50 ms | submit p99 ms | poll p50 ms | poll p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    for row in levels:
        print(
            f"| {row['clients']} | {row['submit_p50_ms']:.1f} | {row['submit_p99_ms']:.1f} | "
            f"{row['poll_p50_ms']:.1f} | {row['poll_p99_ms']:.1f} |"
        )
    print()
    print(
        f"poll p50 {ratio['poll_p50_ms']:.2f} ms vs Table point read p50 "
        f"{ratio['point_read_p50_ms']:.2f} ms: ratio {ratio['ratio']:.1f}x"
    )
    print(
        f"per job: {costs['history_events']} history events over {costs['generations']} "
        f"generation(s), longest history {costs['max_history_length']}; storage calls: "
        f"{costs['storage_calls_submit']} to submit, {costs['storage_calls_total']} in all"
    )
    print(
        f"log follow (append -> visible): p50 {follow['p50_s']:.2f} s, max "
        f"{follow['max_s']:.2f} s over {follow['lines']} lines"
    )
    print(f"dev server peak RSS: {memory:.0f} MiB")
    print(proxy_latency.summary(llm_proxy))


if __name__ == "__main__":
    main()
