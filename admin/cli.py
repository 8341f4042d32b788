"""The operator CLI. Storage is reached with the service's own settings (env / app settings);
orchestrations through the Durable HTTP API of ``--app-url`` (``FOUNDRY_ADMIN_APP_URL``) with the
``durabletask_extension`` system key (``FOUNDRY_ADMIN_DURABLE_KEY``).

    python -m admin list [--status S] [--owner O] [--limit N]
    python -m admin show JOB_ID
    python -m admin logs JOB_ID [--tail N] [--follow]
    python -m admin cancel JOB_ID
    python -m admin reap          # one maintenance pass: TTL, reconcile, sweep, purge
    python -m admin purge         # only the orchestration-history purge past retention
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from api.views import job_view
from orchestrators import run_job
from shared.domain.models import JobStatus
from shared.domain.stream_progress import filter_log_lines
from shared.errors import IllegalTransition, NotFound
from shared.pipeline import lifecycle
from shared.services import Services, get_services
from timers.sweeps import (
    DurableClient,
    MaintenanceReport,
    purge_history,
    run_maintenance,
    runtime_status,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m admin", description=__doc__.split("\n")[0])
    parser.add_argument("--app-url", default=os.environ.get("FOUNDRY_ADMIN_APP_URL", ""))
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list jobs, newest first")
    p.add_argument("--status", choices=[s.value for s in JobStatus])
    p.add_argument("--owner")
    p.add_argument("--limit", type=int, default=20)
    p = sub.add_parser("show", help="a job, its transition history and orchestration status")
    p.add_argument("job_id")
    p = sub.add_parser("logs", help="the job's build log")
    p.add_argument("job_id")
    p.add_argument("--tail", type=int)
    p.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    p = sub.add_parser("cancel", help="cancel an in-flight job")
    p.add_argument("job_id")
    sub.add_parser("reap", help="run the maintenance pass once")
    sub.add_parser("purge", help="purge orchestration history past retention")
    return parser


def _client(args: argparse.Namespace) -> DurableClient | None:
    if not args.app_url:
        return None
    from admin.webhook_client import WebhookDurableClient

    return WebhookDurableClient(
        args.app_url, system_key=os.environ.get("FOUNDRY_ADMIN_DURABLE_KEY") or None
    )


def main(
    argv: list[str] | None = None,
    *,
    services: Services | None = None,
    client: DurableClient | None = None,
    out: TextIO = sys.stdout,
) -> int:
    args = build_parser().parse_args(argv)
    svc = services or get_services()
    durable = client or _client(args)
    try:
        return asyncio.run(_run_then_close(args, svc, durable, out))
    except NotFound:
        print(f"no such job: {getattr(args, 'job_id', '?')}", file=out)
        return 2


async def _run_then_close(
    args: argparse.Namespace, svc: Services, durable: DurableClient | None, out: TextIO
) -> int:
    try:
        return await _run(args, svc, durable, out)
    finally:
        close = getattr(durable, "aclose", None)
        if close is not None:
            await close()


async def _run(
    args: argparse.Namespace, svc: Services, durable: DurableClient | None, out: TextIO
) -> int:
    if args.command == "list":
        jobs, _ = svc.jobs.list_jobs(
            status=JobStatus(args.status) if args.status else None,
            owner=args.owner,
            page_size=args.limit,
        )
        if args.json:
            print(json.dumps([job_view(j) for j in jobs], indent=1), file=out)
        for job in [] if args.json else jobs:
            print(
                f"{job.job_id}  {job.status.value:<9} {job.percent:>3}%  {job.owner:<12} "
                f"{job.org_slug or '-'}/{job.app_name}  {job.preview_url or ''}",
                file=out,
            )
        return 0
    if args.command == "show":
        job = svc.jobs.get_job(args.job_id)
        orchestration: dict[str, Any] | None = None
        if durable is not None:
            status = await durable.get_status(args.job_id)
            orchestration = {
                "runtime_status": runtime_status(status),
                "custom_status": getattr(status, "custom_status", None),
            }
        details: dict[str, Any] = {
            "job": job_view(job),
            "history": svc.jobs.list_history(args.job_id),
            "orchestration": orchestration,
        }
        print(json.dumps(details, indent=1, default=str), file=out)
        return 0
    if args.command == "logs":
        offset = 0
        while True:
            job = svc.jobs.get_job(args.job_id)
            data = svc.blobs.read_log(args.job_id, offset=offset)
            tail = args.tail if offset == 0 else None  # --tail limits the first read only
            offset += len(data)
            shown = filter_log_lines(data.decode("utf-8", errors="replace"), stage=None, tail=tail)
            if shown:
                print(shown, file=out)
            if not args.follow or job.status.is_terminal:
                return 0
            await asyncio.sleep(2)
    if args.command == "cancel":
        try:
            job = lifecycle.cancel_job(svc, args.job_id, reason="canceled by operator")
        except IllegalTransition as exc:
            print(f"not canceled: {exc}", file=out)
            return 1
        svc.tokens.revoke_job(args.job_id)
        svc.audit.record("job.canceled", job_id=args.job_id, actor="admin-cli")
        if durable is not None:
            await durable.raise_event(args.job_id, run_job.CANCEL_EVENT, {"by": "admin-cli"})
        else:  # no orchestration access: clean up here; the reconciler settles the rest
            lifecycle.release_job_resources(svc, job)
        print(f"{args.job_id} canceled", file=out)
        return 0
    if durable is None:
        print("this command needs --app-url (FOUNDRY_ADMIN_APP_URL)", file=out)
        return 2
    report = MaintenanceReport()
    if args.command == "reap":
        report = await run_maintenance(svc, durable)
    else:
        await purge_history(svc, durable, datetime.now(UTC), report)
    print(json.dumps(report.to_dict(), indent=1), file=out)
    return 0 if not report.errors else 1
