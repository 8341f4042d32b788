"""Storage figures measured in-process against Azurite, counted at the SDK transport
(``tests.storage_meter``): round trips of a submit and a replay, the storage transactions of a
short job by price class and what they cost, and the entities each hot path reads with N finished
jobs stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.storage_meter import Exchange, StorageMeter, Tally

KEY = "bench-key"

#: USD per 10,000 transactions: list prices for a general-purpose v2 account, LRS, hot tier
#: (East US). Check your region's prices; every figure below is counts x this table.
PRICES_PER_10K: dict[str, float] = {
    "table": 0.00036,  # any table transaction; an entity-group transaction counts once
    "blob write": 0.05,  # put blob, append block, create append blob
    "blob list": 0.05,
    "blob read": 0.004,
    "blob other": 0.004,  # get properties
    "blob delete": 0.0,
    "queue": 0.004,  # put / get / delete message
}


def price_class(exchange: Exchange) -> str:
    if exchange.service == "table":
        return "table"
    if exchange.method == "PUT":
        return "blob write"
    if exchange.method == "GET":
        return (
            "blob list"
            if "comp=list" in exchange.path or exchange.path.count("/") <= 2
            else ("blob read")
        )
    if exchange.method == "DELETE":
        return "blob delete"
    return "blob other"


def by_class(tally: Tally) -> dict[str, int]:
    return dict(sorted(Counter(price_class(e) for e in tally.exchanges).items()))


def dollars_per_1000(counts: Mapping[str, float]) -> float:
    return 1000 * sum(n * PRICES_PER_10K[kind] / 10_000 for kind, n in counts.items())


@dataclass
class InProcess:
    svc: Any
    meter: StorageMeter
    driver: Any
    host: Any

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        response = asyncio.run(
            self.host.request(method, path, body=raw, headers={"authorization": f"Bearer {KEY}"})
        )
        text = response.get_body().decode()
        return response.status_code, json.loads(text) if text else None


def _metered_services(connection: str, work: Path, **settings: Any) -> tuple[Any, StorageMeter]:
    """Services on fresh tables and container whose storage calls a new meter counts, installed
    for the app's functions; ``settings`` override the defaults."""
    from shared.config.settings import Settings
    from shared.services import Services, use_services

    meter = StorageMeter()
    config = Settings(
        api_keys=KEY,
        storage_connection_string=connection,
        table_prefix="bench" + uuid.uuid4().hex[:8],
        storage_container="bench-" + uuid.uuid4().hex[:8],
        local_work_dir=str(work),
        local_builder_command="",
        **settings,
    )
    svc = Services.build(config, **meter.client_options())
    use_services(svc)
    return svc, meter


@contextmanager
def in_process(connection: str, work: Path, **settings: Any) -> Iterator[InProcess]:
    """The app's functions over metered Services on fresh tables, with the in-process driver."""
    import function_app
    from devhost.driver import Driver
    from devhost.http_host import FunctionHost
    from devhost.loopback import DurableHttpHost
    from shared.services import use_services

    svc, meter = _metered_services(connection, work, **settings)
    driver = Driver(function_app.app)
    durable = DurableHttpHost(driver).start()  # functions reach it through the real client
    host = FunctionHost(function_app.app, durable.binding)
    try:
        yield InProcess(svc, meter, driver, host)
    finally:
        durable.stop()
        for ref in svc.backend.list_resources():
            svc.backend.teardown(ref.job_id)
        use_services(None)


def stop_local_previews(connection: str, work: Path) -> None:
    """Tear down what the local backend left under ``work`` (previews deliberately outlive the
    dev server, so the bench stops the ones its jobs started)."""
    with in_process(connection, work):
        pass  # leaving the block tears every resource under ``work`` down


def body(tag: str) -> dict[str, Any]:
    return {
        "app_name": f"b-{tag}",
        "owner": "bench",
        "idempotency_key": tag,
        "spec_md": "# bench\n",
        "tasks_md": "- [ ] T1: x\n",
        "org_slug": "bench",
    }


def _accepted(status: int, reply: Any) -> None:
    if status != 202:
        raise RuntimeError(f"submit refused: {status} {reply}")


def submit_round_trips(env: InProcess) -> dict[str, Any]:
    with env.meter.measure() as new:
        status, accepted = env.call("POST", "/v1/jobs", body("rt"))
    _accepted(status, accepted)
    with env.meter.measure() as replay:
        env.call("POST", "/v1/jobs", body("rt"))
    from shared.domain.models import JobStatus

    env.svc.jobs.transition(accepted["job_id"], JobStatus.BUILDING, reason="bench")
    with env.meter.measure() as replay_running:
        env.call("POST", "/v1/jobs", body("rt"))
    env.svc.jobs.transition(accepted["job_id"], JobStatus.FAILED, reason="bench")
    return {
        "submit": new.round_trips,
        "submit_by_class": by_class(new),
        "replay_queued": replay.round_trips,
        "replay_not_queued": replay_running.round_trips,
    }


@dataclass
class EpisodeCount:
    """Episodes per instance, and the durable timers each created (by generation and id)."""

    per_instance: Counter[str] = field(default_factory=Counter)
    timers_created: dict[str, set[tuple[int, int]]] = field(default_factory=dict)


def count_episodes(driver: Any) -> EpisodeCount:
    """Wraps the driver's episode step so each episode, and each timer it creates, is counted."""
    from devhost import history

    count = EpisodeCount()
    real_episode = driver._episode

    def counting(inst: Any, new_events: list[dict[str, Any]]) -> None:
        count.per_instance[inst.instance_id] += 1
        real_episode(inst, new_events)
        count.timers_created.setdefault(inst.instance_id, set()).update(
            (inst.generation, event["EventId"])
            for event in inst.history
            if event["EventType"] == history.TIMER_CREATED
        )

    driver._episode = counting
    return count


def short_job(env: InProcess) -> dict[str, Any]:
    """One short job through the driver (the local backend with the bundled example builder):
    history events, activities, episodes, and storage transactions by price class."""
    episodes = count_episodes(env.driver)

    def label(name: str, _input: Any, _attempt: int) -> None:
        env.meter.label = name

    env.driver.activity_hook = label
    with env.meter.measure() as submit:
        status, accepted = env.call("POST", "/v1/jobs", body("short"))
    _accepted(status, accepted)
    job_id = accepted["job_id"]
    with env.meter.measure() as run:
        inst = env.driver.run_to_completion(job_id, between_timers=lambda: time.sleep(0.02))
    env.meter.label = ""
    with env.meter.measure() as poll:
        env.call("GET", f"/v1/jobs/{job_id}")
    activities = len(inst.activity_calls)
    per_activity: dict[str, Counter[str]] = {}
    for name, _input, _attempt in inst.activity_calls:
        per_activity.setdefault(name, Counter())["calls"] += 1
    for exchange in run.exchanges:
        per_activity.setdefault(exchange.label or "?", Counter())[price_class(exchange)] += 1
    service = Counter(by_class(submit)) + Counter(by_class(run))
    return {
        "status": inst.output.get("status"),
        "history_events": inst.total_events,
        "max_history_length": inst.max_history,
        "generations": inst.generation + 1,
        "activities": activities,
        "episodes": episodes.per_instance[job_id],
        "submit": by_class(submit),
        "run": by_class(run),
        "poll": by_class(poll),
        "per_activity": {k: dict(v) for k, v in sorted(per_activity.items())},
        "service_transactions": dict(service),
        "service_usd_per_1000_jobs": dollars_per_1000(service),
    }


#: The runner's request methods by price class (its count comes from the result marker).
_RUNNER_CLASSES = {
    "PUT": "blob write",
    "GET": "blob read",
    "HEAD": "blob other",
    "DELETE": "blob delete",
}
PUSHED_TIMEOUT_SECS = 120.0


@contextmanager
def served(connection: str, work: Path, **settings: Any) -> Iterator[InProcess]:
    """The production path in process: the driver on the real clock, run by the dev host's pump,
    and the app's HTTP functions served on loopback so the build runner's notices (progress,
    ``finished``) reach ``build_event`` as they reach the Function App from an ACA job. The build
    is checked only on that push and a 5-minute fallback timer, as on ACA."""
    import secrets

    import function_app
    from devhost.binding import client_binding
    from devhost.driver import Driver
    from devhost.http_host import FunctionHost
    from devhost.loopback import LoopbackServer
    from devhost.ports import free_port
    from devhost.pump import Pump
    from devhost.server import build_app
    from shared.services import use_services

    port, system_key = free_port(), secrets.token_urlsafe(32)
    base = f"http://127.0.0.1:{port}"
    svc, meter = _metered_services(
        connection, work, api_base_url=base, build_check_secs=300, **settings
    )
    driver = Driver(function_app.app, realtime=True)
    host = FunctionHost(function_app.app, client_binding(base, system_key))
    server = LoopbackServer(build_app(host, driver, system_key=system_key), port=port).start()
    pump = Pump(driver)
    pump.start()
    try:
        yield InProcess(svc, meter, driver, host)
    finally:
        pump.stop()
        server.stop()
        for ref in svc.backend.list_resources():
            svc.backend.teardown(ref.job_id)
        use_services(None)


def pushed_short_job(env: InProcess) -> dict[str, Any]:
    """One short job on the production path (``served``): the orchestration's activities,
    episodes and history events, and every storage transaction by price class, the service's
    (counted at its SDK transport) and the build runner's (counted at its own, reported in its
    result marker) apart."""
    episodes = count_episodes(env.driver)
    with env.meter.measure() as run:
        status, accepted = env.call("POST", "/v1/jobs", body("pushed"))
        _accepted(status, accepted)
        job_id = accepted["job_id"]
        deadline = time.monotonic() + PUSHED_TIMEOUT_SECS
        while (inst := env.driver.status(job_id)) is None or inst.is_running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{job_id} did not finish in {PUSHED_TIMEOUT_SECS} s")
            time.sleep(0.05)
    marker = json.loads((env.svc.backend.job_dir(job_id) / "output" / "result.json").read_text())
    # The upload of the diagnostics archive, which carries the marker, comes after its count.
    runner = Counter({"blob write": 1})
    for method, n in marker["storage_requests"].items():
        runner[_RUNNER_CLASSES[method]] += n
    service = Counter(by_class(run))
    return {
        "status": (inst.output or {}).get("status"),
        "history_events": inst.total_events,
        "activities": len(inst.activity_calls),
        "episodes": episodes.per_instance[job_id],
        "timers": len(episodes.timers_created.get(job_id, set())),
        "service": dict(service),
        "runner": dict(sorted(runner.items())),
        "service_usd_per_1000_jobs": dollars_per_1000(service),
        "runner_usd_per_1000_jobs": dollars_per_1000(runner),
        "storage_usd_per_1000_jobs": dollars_per_1000(service + runner),
    }


def durable_provider(activities: float, episodes: float, timers: float) -> dict[str, Any]:
    """Transactions the Durable Azure Storage provider spends on one orchestration (a model of
    its documented mechanics, not a measurement: that provider cannot run here).

    * start: an Instances row and a control-queue message;
    * each episode: get + delete its control-queue message(s), read the history (no extended
      sessions), write the new history rows in one batch, update the Instances row;
    * each activity: put, get and delete a work-item message, put its result on the control
      queue; each durable timer: put a delayed control-queue message."""
    queue = 1 + 2 * episodes + 4 * activities + timers
    table = 1 + 3 * episodes
    counts = {"queue": queue, "table": table}
    return {**counts, "usd_per_1000_jobs": dollars_per_1000(counts)}


def fixed_monthly(poll_secs: float, partitions: int = 4) -> dict[str, Any]:
    """The provider's cost while idle, per month: every control queue (one per partition) and
    the work-item queue polled every ``poll_secs`` (its idle backoff ceiling,
    ``maxQueuePollingInterval``), and one lease renewal per partition every 10 s
    (``leaseRenewInterval``) plus one lease-acquire scan every 10 s (``leaseAcquireInterval``)."""
    month = 30 * 24 * 3600
    polls = (partitions + 1) * month / poll_secs
    leases = (partitions + 1) * month / 10
    counts = {"queue": polls, "blob other": leases}
    return {"queue_polls": polls, "lease_ops": leases, "usd": dollars_per_1000(counts) / 1000}


#: Finished jobs written through entity-group transactions; the rest are bulk-loaded.
TRANSACTION_SEED = 2000


def entities_at_rows(work: Path, rows: int) -> dict[str, Any]:
    """Round trips and entities read by each hot path with 0 and then ``rows`` finished jobs
    stored, plus how long a status-filtered scan (the old queued count) takes at that size.

    Runs its own Azurite with a store on disk: the first ``TRANSACTION_SEED`` jobs go in through
    transactions, the rest through ``bench.azurite_bulk`` while the emulator is stopped."""
    from bench.azurite_bulk import bulk_load, check_loaded
    from devhost.binding import durable_client
    from devhost.worker import run_in_worker
    from shared.domain.models import JobStatus
    from tests.azurite import free_port, start_azurite
    from tests.seed_jobs import finished_job_rows, seed_finished_jobs
    from timers.sweeps import ORPHAN_INPUT_EVERY_MINUTES, run_maintenance

    ports = [free_port() for _ in range(3)]
    location = work / "azurite-store"
    location.mkdir(parents=True)
    azurite = start_azurite(work / "azurite-log", ports=ports, location=location)
    try:
        with in_process(azurite.connection_string, work / "jobs", queue_cap=100) as env:
            jobs = env.svc.jobs
            for i in range(3):
                _accepted(*env.call("POST", "/v1/jobs", body(f"active-{i}")))
            probe = jobs.list_jobs(page_size=1)[0][0]
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            aligned = now - timedelta(minutes=now.minute % ORPHAN_INPUT_EVERY_MINUTES)
            client = durable_client(env.host.durable_binding)  # the SDK's own client

            def measure(round_no: int) -> dict[str, tuple[int, int]]:
                paths: dict[str, Any] = {
                    "submit": lambda: env.call("POST", "/v1/jobs", body(f"m{round_no}")),
                    "replay": lambda: env.call("POST", "/v1/jobs", body(f"m{round_no}")),
                    "poll": lambda: env.call("GET", f"/v1/jobs/{probe.job_id}"),
                    "list_first_page": lambda: env.call("GET", "/v1/jobs?limit=50"),
                    "maintenance": lambda: run_in_worker(
                        run_maintenance(env.svc, client, now=aligned)
                    ),
                    "healthz": lambda: env.call("GET", "/v1/healthz"),
                }
                out = {}
                for name, call in paths.items():
                    with env.meter.measure() as tally:
                        call()
                    out[name] = (tally.round_trips, tally.entities_read)
                # Leave the active set as it was: the measured submit ends.
                mine = jobs.list_jobs(page_size=1)[0][0]
                jobs.transition(mine.job_id, JobStatus.FAILED, reason="bench", finished_at=now)
                return out

            def scan_ms() -> tuple[float, float]:
                """The old queued count (a status filter over every job row) vs the queue
                key range."""
                start = time.perf_counter()
                list(
                    jobs.jobs.query_entities(
                        "PartitionKey eq @pk and status eq @st",
                        parameters={"pk": "job", "st": "queued"},
                        select=["RowKey"],
                        read_timeout=600,
                    )
                )
                scan = time.perf_counter() - start
                start = time.perf_counter()
                jobs.queue_snapshot()
                return scan * 1000, (time.perf_counter() - start) * 1000

            empty, empty_scan = measure(0), scan_ms()
            started = time.perf_counter()
            in_transactions = min(rows, TRANSACTION_SEED)
            written = seed_finished_jobs(jobs, in_transactions, now=now)
            bulk = list(finished_job_rows(rows - in_transactions, now=now, seed=11))
            if bulk:
                azurite.stop()
                written += bulk_load(location, jobs.jobs.table_name, bulk)
                azurite = start_azurite(work / "azurite-log", ports=ports, location=location)
                check_loaded(jobs.jobs, bulk[-1])
            seed_secs = time.perf_counter() - started
            stored = jobs.count([JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED])
            crowded, crowded_scan = measure(1), scan_ms()
    finally:
        azurite.stop()
    return {
        "rows": rows,
        "finished_jobs_stored": stored,
        "entities_seeded": written,
        "seeded_in_transactions": in_transactions,
        "seed_secs": seed_secs,
        "empty": empty,
        "crowded": crowded,
        "status_scan_ms": {"empty": empty_scan[0], "crowded": crowded_scan[0]},
        "queue_range_ms": {"empty": empty_scan[1], "crowded": crowded_scan[1]},
    }
