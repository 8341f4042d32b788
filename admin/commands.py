"""The operator CLI's subcommands. One rule decides where each goes:

- reads (``list``, ``show``, ``logs``) come straight from job storage, with the service's own
  storage settings, and never write;
- every change (``submit``, ``cancel``, ``delete-preview``, ``reap``, ``purge``) goes through the
  deployed app, so it runs with the app's settings, identity and backend, never the operator's.

Each command returns ``(exit code, JSON document)``; text for people goes through
:class:`Console`, which stays silent under ``--json`` so stdout then holds one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from admin import preflight as preflight_checks
from admin import render
from admin.app_client import AppClient
from admin.exits import CliError, Exit, from_exception
from admin.webhook_client import WebhookDurableClient
from api.views import job_view
from shared.config.settings import Settings
from shared.domain.models import JobStatus
from shared.domain.stream_progress import filter_log_lines
from shared.services import Services
from timers.sweeps import DurableClient, runtime_status

#: The maintenance timer's function name (timers/maintenance.py): TTL reaper, reconciler,
#: orphan sweep and history purge, in that order.
MAINTENANCE_FUNCTION = "maintenance"

Document = Any
Command = Callable[["Context"], Awaitable[tuple[Exit, Document]]]


@dataclass
class Console:
    out: TextIO
    err: TextIO
    json_mode: bool

    def say(self, text: str) -> None:
        """A line for people; dropped under ``--json``."""
        if not self.json_mode and text:
            print(text, file=self.out, flush=True)

    def document(self, document: Document) -> None:
        print(json.dumps(document, indent=2, default=str), file=self.out, flush=True)

    def error(self, error: CliError) -> None:
        if self.json_mode:
            payload = {"error": error.code, "message": error.message, "exit_code": int(error.exit)}
            print(json.dumps(payload), file=self.err, flush=True)
        else:
            print(f"admin: error: {error.message}", file=self.err, flush=True)


@dataclass
class Context:
    args: argparse.Namespace
    console: Console
    services_override: Services | None = None
    durable_override: DurableClient | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _services: Services | None = None
    _app: AppClient | None = None
    _durable: WebhookDurableClient | None = None

    @property
    def app_url(self) -> str:
        return str(
            getattr(self.args, "app_url", "") or self.environ.get("FOUNDRY_ADMIN_APP_URL", "")
        )

    def services(self) -> Services:
        """Job storage from the service's settings. The CLI never drives a build backend, so the
        local one is wired whatever FOUNDRY_SERVICE_BUILD_BACKEND says, and nothing is created."""
        if self.services_override is not None:
            return self.services_override
        if self._services is None:
            settings = replace(Settings.from_env(self.environ), build_backend="local")
            self._services = Services.build(settings, provision=False)
        return self._services

    def app(self) -> AppClient:
        if not self.app_url:
            raise CliError(
                Exit.AUTH,
                "misconfigured",
                "this command talks to the deployed app: set FOUNDRY_ADMIN_APP_URL or --app-url",
            )
        if self._app is None:
            self._app = AppClient(
                self.app_url,
                api_key=self.environ.get("FOUNDRY_ADMIN_API_KEY") or None,
                master_key=self.environ.get("FOUNDRY_ADMIN_MASTER_KEY") or None,
            )
        return self._app

    def durable(self) -> DurableClient | None:
        """The Durable HTTP management API, when an app URL is known (optional for ``show``)."""
        if self.durable_override is not None:
            return self.durable_override
        if not self.app_url:
            return None
        if self._durable is None:
            self._durable = WebhookDurableClient(
                self.app_url, system_key=self.environ.get("FOUNDRY_ADMIN_DURABLE_KEY") or None
            )
        return self._durable

    async def aclose(self) -> None:
        for client in (self._app, self._durable, self.durable_override):
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()
        if self._services is not None:
            await asyncio.to_thread(self._services.backend.close)


# -- reads (storage) -------------------------------------------------------------------------
async def list_jobs(ctx: Context) -> tuple[Exit, Document]:
    args = ctx.args
    jobs, cursor = await asyncio.to_thread(
        ctx.services().jobs.list_jobs,
        status=JobStatus(args.status) if args.status else None,
        owner=args.owner,
        page_size=args.limit,
        cursor=args.cursor,
    )
    views = [job_view(job) for job in jobs]
    for view in views:
        ctx.console.say(render.job_row(view))
    if not views:
        ctx.console.say("no jobs")
    if cursor:
        ctx.console.say(f"more: --cursor {cursor}")
    return Exit.OK, {"jobs": views, "next_cursor": cursor}


async def show(ctx: Context) -> tuple[Exit, Document]:
    svc = ctx.services()
    job = await asyncio.to_thread(svc.jobs.get_job, ctx.args.job_id)
    history = await asyncio.to_thread(svc.jobs.list_history, ctx.args.job_id)
    orchestration = await _orchestration(ctx)
    view = job_view(job)
    ctx.console.say(render.job_summary(view, history, orchestration))
    return Exit.OK, {"job": view, "history": history, "orchestration": orchestration}


async def _orchestration(ctx: Context) -> dict[str, Any] | None:
    durable = ctx.durable()
    if durable is None:
        return None
    try:
        status = await durable.get_status(ctx.args.job_id)
    except Exception as exc:  # noqa: BLE001 - the job is still worth showing without it
        return {"error": from_exception(exc).message}
    return {
        "runtime_status": runtime_status(status),
        "custom_status": getattr(status, "custom_status", None),
    }


async def logs(ctx: Context) -> tuple[Exit, Document]:
    return await follow_log(ctx, ctx.args.job_id)


async def follow_log(ctx: Context, job_id: str) -> tuple[Exit, Document]:
    """Print the build log (rendered, or raw JSONL with ``--raw``); with ``--follow`` keep
    reading until the job ends, with a progress line whenever status, phase, percent or stage
    moves, and a final status line. Followed to the end, a job that is not ``ready`` exits 1."""
    args, svc, console = ctx.args, ctx.services(), ctx.console
    offset, pending, shown_progress = 0, b"", ""
    events: list[Any] = []
    first = True
    while True:
        job = await asyncio.to_thread(svc.jobs.get_job, job_id)  # before the log: see it all
        data = await asyncio.to_thread(svc.blobs.read_log, job_id, offset=offset)
        offset += len(data)
        pending += data
        ended = job.status.is_terminal or not args.follow
        complete, _, pending = pending.rpartition(b"\n") if not ended else (pending, b"", b"")
        text = complete.decode("utf-8", errors="replace")
        # --tail limits the first read only; later reads are all new lines.
        tail = getattr(args, "tail", None) if first else None  # submit --follow has no --tail
        lines = filter_log_lines(text, stage=None, tail=tail).split("\n")
        first = False
        for line in filter(None, lines):
            events.append(_parsed(line))
            console.say(line if args.raw else render.event_line(line))
        view = job_view(job)
        if ended:
            console.say(render.final_line(view))
            failed = args.follow and job.status is not JobStatus.READY
            return (Exit.FAILED if failed else Exit.OK), {"job": view, "events": events}
        progress = render.progress_line(view)
        if progress != shown_progress:
            console.say(progress)
            shown_progress = progress
        await asyncio.sleep(args.interval)


def _parsed(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return {"unparsed": line}


# -- changes (through the app) ---------------------------------------------------------------
async def health(ctx: Context) -> tuple[Exit, Document]:
    report = await ctx.app().health()
    status = report.get("status", "?")
    details = ", ".join(f"{k} {v}" for k, v in report.items() if k != "status")
    ctx.console.say(f"{status}" + (f": {details}" if details else ""))
    return (Exit.OK if status == "ok" else Exit.UNAVAILABLE), report


async def submit(ctx: Context) -> tuple[Exit, Document]:
    args = ctx.args
    body: dict[str, Any] = {
        "app_name": args.app_name,
        "owner": args.owner,
        "idempotency_key": args.idempotency_key or f"admin-{uuid.uuid4().hex}",
        "spec_md": _read_text(args.spec, "--spec"),
        "tasks_md": _read_text(args.tasks, "--tasks"),
    }
    if args.org:
        body["org_slug"] = args.org
    if args.ttl_hours is not None:
        body["preview_ttl_hours"] = args.ttl_hours
    accepted = await ctx.app().submit(body)
    job_id = str(accepted.get("job_id"))
    position = accepted.get("queue_position")
    ctx.console.say(
        f"{job_id} {accepted.get('status')}"
        + (f" (queue position {position})" if position is not None else "")
        + f" | idempotency key {body['idempotency_key']}"
    )
    if not args.follow:
        return Exit.OK, {**accepted, "idempotency_key": body["idempotency_key"]}
    code, followed = await follow_log(ctx, job_id)
    return code, {"accepted": accepted, **followed}


def _read_text(path: str, flag: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(Exit.USAGE, "usage", f"{flag} {path}: {exc.strerror}") from None


async def cancel(ctx: Context) -> tuple[Exit, Document]:
    view = await ctx.app().cancel(ctx.args.job_id)
    ctx.console.say(f"{view.get('job_id')} {view.get('status')}")
    if view.get("status") != JobStatus.CANCELED.value:  # it ended on its own in between
        raise CliError(
            Exit.CONFLICT, "conflict", f"{ctx.args.job_id} ended {view.get('status')} first"
        )
    return Exit.OK, view


async def delete_preview(ctx: Context) -> tuple[Exit, Document]:
    await ctx.app().delete_preview(ctx.args.job_id)
    ctx.console.say(f"{ctx.args.job_id}: preview deleted; the job is now expired")
    return Exit.OK, {"job_id": ctx.args.job_id, "preview_deleted": True}


async def run_maintenance(ctx: Context) -> tuple[Exit, Document]:
    """``reap`` and ``purge``: one run of the deployed maintenance timer, now. The host queues it
    and answers at once; its report goes to the app's logs (``maintenance: {...}``)."""
    status = await ctx.app().run_function(MAINTENANCE_FUNCTION)
    ctx.console.say(
        f"the app queued a run of its {MAINTENANCE_FUNCTION} timer (HTTP {status}): TTL reaper, "
        "reconciler, orphan sweep, history purge; its report is in the app's logs"
    )
    return Exit.OK, {"function": MAINTENANCE_FUNCTION, "queued": True, "http_status": status}


async def reindex(ctx: Context) -> tuple[Exit, Document]:
    """Index job rows written by code without the jobs-table index (``JobStore.reindex``)."""
    indexed = await asyncio.to_thread(ctx.services().jobs.reindex)
    ctx.console.say(f"{indexed} job rows indexed")
    return Exit.OK, {"indexed": indexed}


async def preflight(ctx: Context) -> tuple[Exit, Document]:
    """What a deployment still lacks: registry, builder image, secret references, roles."""
    report = await asyncio.to_thread(preflight_checks.run_preflight)
    if not ctx.console.json_mode:
        preflight_checks.render(report, ctx.console.out)
    if report.ok:
        return Exit.OK, report.to_dict()
    unconfigured = report.exit_code == preflight_checks.EXIT_UNCONFIGURED
    return (Exit.AUTH if unconfigured else Exit.FAILED), report.to_dict()


COMMANDS: dict[str, Command] = {
    "health": health,
    "preflight": preflight,
    "submit": submit,
    "list": list_jobs,
    "show": show,
    "logs": logs,
    "cancel": cancel,
    "delete-preview": delete_preview,
    "reap": run_maintenance,
    "purge": run_maintenance,
    "reindex": reindex,
}
