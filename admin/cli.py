"""The operator CLI: ``python -m admin --help``.

Parsing, the help text (environment variables and exit codes) and the one place errors become
stderr lines and exit codes; the subcommands live in :mod:`admin.commands`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from admin.commands import COMMANDS, Console, Context
from admin.exits import MEANING, CliError, Exit, from_exception
from shared.domain.models import JobStatus
from shared.services import Services
from timers.sweeps import DurableClient

ENVIRONMENT = (
    ("FOUNDRY_ADMIN_APP_URL", "the app's base URL (or --app-url): all but list and logs"),
    ("FOUNDRY_ADMIN_API_KEY", "an API key with jobs:write: submit, cancel, delete-preview"),
    ("FOUNDRY_ADMIN_MASTER_KEY", "the Functions host's master key: reap, purge (none locally)"),
    ("FOUNDRY_ADMIN_DURABLE_KEY", "the durabletask_extension system key: orchestration in show"),
    ("FOUNDRY_SERVICE_STORAGE_CONNECTION_STRING", "job storage for list, show, logs, reindex"),
    ("FOUNDRY_SERVICE_AZURE_STORAGE_ACCOUNT", "or the storage account, read with your Azure login"),
    ("FOUNDRY_SERVICE_TABLE_PREFIX", "if the app sets it (default foundry)"),
    ("FOUNDRY_SERVICE_AZURE_STORAGE_CONTAINER", "if the app sets it (default foundry-jobs)"),
)


def _epilog() -> str:
    width = max(len(name) for name, _ in ENVIRONMENT)
    lines = ["environment:"]
    lines += [f"  {name:<{width}}  {meaning}" for name, meaning in ENVIRONMENT]
    lines += ["", "exit codes:"]
    lines += [f"  {int(code)}  {MEANING[code]}" for code in Exit]
    lines += [
        "",
        "Reads (list, show, logs) come from job storage; every change goes through the app.",
        "--json prints one JSON document on stdout; errors go to stderr (as JSON with --json).",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the subcommand is not reset by the subparser's default.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    common.add_argument("--app-url", default=argparse.SUPPRESS, help="the app's base URL")
    parser = argparse.ArgumentParser(
        prog="python -m admin",
        description="Operate the Context Foundry build service.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    command("health", "is the app up? (GET /v1/healthz; exit 5 unless ok)")
    command(
        "preflight",
        "what a deployment lacks: registry and ACR Tasks, builder image, Key Vault references, "
        "role assignments, healthz (exit 1 if a check fails, 4 if settings are incomplete)",
    )
    p = command("submit", "submit a build (POST /v1/jobs)")
    p.add_argument("--app-name", required=True, help="[a-z0-9-] slug")
    p.add_argument("--owner", required=True)
    p.add_argument("--org", help="org slug: the preview is https://<app>.<org>.<domain>")
    p.add_argument("--spec", required=True, metavar="FILE", help="SPEC.md (- for stdin)")
    p.add_argument("--tasks", required=True, metavar="FILE", help="TASKS.md (- for stdin)")
    p.add_argument(
        "--idempotency-key",
        help="reuse one to make a retried submit return the same job (default: a new random key)",
    )
    p.add_argument("--ttl-hours", type=int, help="preview lifetime (clamped by the service)")
    _follow_options(p, follow_help="then follow the build log as `logs --follow` does")
    p = command("list", "jobs, newest first")
    p.add_argument("--status", choices=[s.value for s in JobStatus])
    p.add_argument("--owner")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p = command("show", "a job: summary, transitions (ISO times) and orchestration status")
    p.add_argument("job_id")
    p = command("logs", "the job's build log, rendered; --raw for the JSONL as written")
    p.add_argument("job_id")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines (first read)")
    _follow_options(
        p,
        follow_help="keep reading until the job ends, with progress and a final status line "
        "(exit 1 unless it ends ready)",
    )
    p = command("cancel", "cancel a job that has not ended (POST /v1/jobs/{id}/cancel)")
    p.add_argument("job_id")
    p = command("delete-preview", "take down a ready job's preview (DELETE /v1/jobs/{id}/preview)")
    p.add_argument("job_id")
    command(
        "reap", "run the app's maintenance timer now: TTL reaper, reconciler, orphan sweep, purge"
    )
    command(
        "purge", "the same timer run (its last step purges orchestration history past retention)"
    )
    command(
        "reindex",
        "once after the upgrade that adds the jobs-table index: index job rows written before it "
        "(storage; scans every job row once)",
    )
    return parser


def _follow_options(p: argparse.ArgumentParser, *, follow_help: str) -> None:
    p.add_argument("--follow", "-f", action="store_true", help=follow_help)
    p.add_argument("--raw", action="store_true", help="log lines as written (JSONL)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECS", help="poll interval")


def main(
    argv: list[str] | None = None,
    *,
    services: Services | None = None,
    client: DurableClient | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code (see ``--help``). ``services`` and ``client``
    replace the storage and Durable clients built from the environment (tests use them)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0)
    console = Console(out, err, json_mode=getattr(args, "json", False))
    ctx = Context(args, console, services_override=services, durable_override=client)
    try:
        code, document = asyncio.run(_run(ctx))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes an exit code
        error = from_exception(exc)
        console.error(error)
        return int(error.exit)
    if console.json_mode:
        console.document(document)
    return int(code)


async def _run(ctx: Context) -> tuple[Exit, object]:
    try:
        return await COMMANDS[ctx.args.command](ctx)
    finally:
        await ctx.aclose()


__all__ = ["CliError", "build_parser", "main"]
