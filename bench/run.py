"""The benchmark: ``python -m bench.run [--rows N]`` (a few minutes; ``--rows 100000`` adds about
a minute). Prints every figure, writes ``bench/results.json`` and the latency charts in README.md
(``bench.chart``). Everything runs on loopback: Azurite, the dev server, the clients.

Measures: submit and poll latency (p50/p99) at 1, 10 and 50 concurrent clients; poll latency
against a bare Table point read; storage round trips of a submit and a replay; a short job's
orchestration history events and storage transactions (and what they cost); history events of a
50-minute build (from the orchestration hook, ``bench/orchestration.py``, when present);
log-follow latency and time-to-ready against the builder's own run time; entities read per
request with N finished jobs stored; dev-server peak memory; the first-byte latency the LLM proxy
adds (``bench/proxy_latency.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
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

from bench import chart, cold_start, proxy_latency, storage_costs, time_to_ready  # noqa: E402
from bench.dev_server import KEY, dev_server  # noqa: E402
from bench.storage_costs import body  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402

TICK_BUILDER = ROOT / "bench" / "tick_builder.py"
LEVELS = (1, 10, 50)
SUBMITS_PER_LEVEL = 50  # then canceled, so the queue stays within its default cap of 50
POLLS_PER_LEVEL = 300
TICK_SECS = 0.5  # bench/tick_builder.py prints one line per half second


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


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


def log_follow(base: str) -> dict[str, float]:
    """One job with the tick builder: how soon each log line is visible, and how long from the
    submit to ``ready`` against how long the builder itself ran (first to last tick)."""
    headers = {"Authorization": f"Bearer {KEY}"}
    lags: list[float] = []
    ticks: list[float] = []
    ready_after = -1.0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        submitted = time.time()
        job_id = http.post("/v1/jobs", json={**body("follow"), "app_name": "follow"}).json()[
            "job_id"
        ]
        cursor, deadline = "0", time.time() + 120
        while time.time() < deadline:
            page = http.get(f"/v1/jobs/{job_id}/logs", params={"cursor": cursor}).json()
            now = time.time()
            for event in page["events"]:
                if event.get("event") == "bench_tick":
                    lags.append(now - event["t"])
                    ticks.append(event["t"])
            cursor = page["next_cursor"]
            if ready_after < 0 and http.get(f"/v1/jobs/{job_id}").json()["status"] == "ready":
                ready_after = time.time() - submitted
            if page["complete"] and ready_after >= 0:
                break
            time.sleep(0.1)
    return {
        "lines": len(lags),
        "p50_s": statistics.median(lags) if lags else -1,
        "max_s": max(lags) if lags else -1,
        "time_to_ready_s": ready_after,
        "builder_s": (max(ticks) - min(ticks) + TICK_SECS) if ticks else -1,
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1.0


def orchestration_figures(short_events: int) -> dict[str, Any]:
    """History events per job. A short job is measured here; a 50-minute build comes from
    ``bench/orchestration.py``'s ``measure()`` (the orchestration's own benchmark) when present."""
    figures: dict[str, Any] = {"short_job_events": short_events, "fifty_minute_events": None}
    try:
        hook = importlib.import_module("bench.orchestration")
    except ModuleNotFoundError:
        return figures
    figures.update(hook.measure())
    return figures


def in_process_figures(connection: str, scratch: Path, rows: int) -> dict[str, Any]:
    with storage_costs.in_process(connection, scratch / "rt") as env:
        round_trips = storage_costs.submit_round_trips(env)
    # The driver's clock is virtual: check the build on a short backoff (as the tests do)
    # instead of waiting for the runner's push, and never sleep inside a check.
    short_settings = {"build_check_secs": 10, "check_wait_secs": 0}
    with storage_costs.in_process(connection, scratch / "short", **short_settings) as env:
        short = storage_costs.short_job(env)
    timers = max(0, short["episodes"] - short["activities"] - 1)
    durable = storage_costs.durable_provider(short["activities"], short["episodes"], timers)
    with storage_costs.served(connection, scratch / "pushed") as env:
        pushed = storage_costs.pushed_short_job(env)
    pushed["durable_provider"] = storage_costs.durable_provider(
        pushed["activities"], pushed["episodes"], pushed["timers"]
    )
    entities = storage_costs.entities_at_rows(scratch / "rows", rows)
    return {
        "round_trips": round_trips,
        "short_job": short,
        "pushed_short_job": pushed,
        "durable_provider_per_job": durable,
        "durable_idle_month": {
            "poll_10s": storage_costs.fixed_monthly(10),
            "poll_30s": storage_costs.fixed_monthly(30),
        },
        "orchestration": orchestration_figures(short["history_events"]),
        "entities": entities,
    }


def print_report(results: dict[str, Any]) -> None:
    levels, ratio = results["levels"], results["poll_vs_point_read"]
    follow, inproc = results["log_follow"], results["in_process"]
    rt, short, durable = (
        inproc["round_trips"],
        inproc["short_job"],
        inproc["durable_provider_per_job"],
    )
    orch, ent = inproc["orchestration"], inproc["entities"]
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
        f"storage round trips: submit {rt['submit']} {rt['submit_by_class']}, replay "
        f"{rt['replay_queued']} (queued) / {rt['replay_not_queued']} (not queued)"
    )
    fifty = orch["fifty_minute_events"]
    print(
        f"history events per job: short {orch['short_job_events']} (longest history "
        f"{short['max_history_length']}, {short['activities']} activities, {short['episodes']} "
        f"episodes); 50-minute build "
        + (str(fifty) if fifty is not None else "n/a (bench/orchestration.py not present)")
    )
    print(
        f"short job storage transactions (service): {short['service_transactions']} = "
        f"${short['service_usd_per_1000_jobs']:.4f} per 1,000 jobs; Durable provider (model): "
        f"{durable['queue']:.0f} queue + {durable['table']:.0f} table = "
        f"${durable['usd_per_1000_jobs']:.4f} per 1,000 jobs"
    )
    pushed = inproc["pushed_short_job"]
    print(
        f"short job on the production path (runner pushes its end): {pushed['history_events']} "
        f"history events, {pushed['activities']} activities in {pushed['episodes']} episodes, "
        f"{pushed['timers']} timer; storage: service {pushed['service']} "
        f"${pushed['service_usd_per_1000_jobs']:.4f} + build runner {pushed['runner']} "
        f"${pushed['runner_usd_per_1000_jobs']:.4f} = ${pushed['storage_usd_per_1000_jobs']:.4f} "
        f"per 1,000 jobs; Durable provider (model) "
        f"${pushed['durable_provider']['usd_per_1000_jobs']:.4f}"
    )
    idle = inproc["durable_idle_month"]
    print(
        f"Durable provider idle, per month: ${idle['poll_10s']['usd']:.2f} at a 10 s polling "
        f"ceiling, ${idle['poll_30s']['usd']:.2f} at 30 s"
    )
    print(
        f"log follow (append -> visible): p50 {follow['p50_s']:.2f} s, max "
        f"{follow['max_s']:.2f} s over {follow['lines']} lines; submit -> ready "
        f"{follow['time_to_ready_s']:.1f} s for a builder that ran {follow['builder_s']:.1f} s"
    )
    print(
        f"entities read per request (round trips, entities) with 0 and "
        f"{ent['finished_jobs_stored']:,} finished jobs stored ({ent['entities_seeded']:,} rows: "
        f"{ent['seeded_in_transactions']:,} jobs through transactions, the rest bulk-loaded; "
        f"{ent['seed_secs']:.0f} s):"
    )
    for name, empty in ent["empty"].items():
        print(f"  {name:<16} {tuple(empty)} -> {tuple(ent['crowded'][name])}")
    scan, ranged = ent["status_scan_ms"], ent["queue_range_ms"]
    print(
        f"  old queued count (status filter over the partition): {scan['empty']:.1f} ms -> "
        f"{scan['crowded']:.1f} ms; queue key range: {ranged['empty']:.1f} ms -> "
        f"{ranged['crowded']:.1f} ms"
    )
    print(f"dev server peak RSS: {results['dev_server_peak_rss_mb']:.0f} MiB")
    cold = results["cold_start"]
    print(
        f"cold start, the app's share: import p50 {cold['import_p50_s']:.2f} s, "
        f"first poll with fresh services p50 {cold['first_poll_p50_s']:.2f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument(
        "--rows", type=int, default=2000, help="finished jobs to seed for the per-request reads"
    )
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="foundry-bench-"))
    azurite = start_azurite(scratch / "azurite")
    connection = azurite.connection_string
    try:
        with dev_server(
            connection,
            scratch / "server",
            QUEUE_CAP="60",
            MAX_CONCURRENT_BUILDS="1",
            LOCAL_BUILDER_COMMAND=f"{sys.executable} {TICK_BUILDER} 40",
        ) as server:
            follow = log_follow(server.base)  # first, while the build slot is free
            levels = latency_levels(server.base)
            ratio = point_read_ms(connection, server.table_prefix, server.base)
            memory = peak_rss_mb(server.pid)
        storage_costs.stop_local_previews(connection, server.work_dir)
        ready = time_to_ready.measure(connection, scratch / "time-to-ready")
        llm_proxy = proxy_latency.first_byte_overhead(connection)
        cold = cold_start.measure(connection)
        inproc = in_process_figures(connection, scratch / "inproc", args.rows)
    finally:
        azurite.stop()
    results = {
        "levels": levels,
        "poll_vs_point_read": ratio,
        "log_follow": follow,
        "time_to_ready": ready,
        "in_process": inproc,
        "dev_server_peak_rss_mb": memory,
        "llm_proxy_first_byte": llm_proxy,
        "cold_start": cold,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    chart.write_readme(results)  # the README's latency charts follow the new results
    print_report(results)
    print(time_to_ready.summary(ready))
    print(proxy_latency.summary(llm_proxy))


if __name__ == "__main__":
    main()
