"""Structured logging: every record carries ``job_id`` and ``instance_id`` (the orchestration
instance id is the job id), from a context variable set by activities and HTTP handlers."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from shared.domain.sanitize import scrub_text

_job_id: contextvars.ContextVar[str] = contextvars.ContextVar("foundry_job_id", default="-")


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobContextFilter(logging.Filter):
    """Adds ``job_id``/``instance_id`` to records (App Insights shows them as custom dimensions)
    and scrubs secrets out of the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = getattr(record, "job_id", None) or _job_id.get()
        record.job_id = job_id
        record.instance_id = job_id
        if record.args:
            record.msg, record.args = record.getMessage(), None
        record.msg = scrub_text(str(record.msg))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "job_id": getattr(record, "job_id", "-"),
            "instance_id": getattr(record, "instance_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(line, separators=(",", ":"))


def install(*, json_lines: bool = False, level: int = logging.INFO) -> None:
    """Attach the filter to the root handlers (and optionally JSON formatting). Idempotent."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level)
    for handler in root.handlers:
        if not any(isinstance(f, JobContextFilter) for f in handler.filters):
            handler.addFilter(JobContextFilter())
        if json_lines:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("azure").setLevel(logging.WARNING)
