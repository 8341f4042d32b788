"""Append-only audit trail: one JSON line per event in a daily append blob, secrets scrubbed."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.domain.sanitize import scrub

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    def record(
        self, action: str, *, job_id: str | None = None, actor: str | None = None, **details: Any
    ) -> None:
        """Best-effort: an audit failure is logged, never turned into a failed request."""
        now = datetime.now(UTC)
        line = {
            "at": now.isoformat(),
            "action": action,
            "job_id": job_id,
            "actor": actor,
            **scrub(details),
        }
        data = (json.dumps(line, separators=(",", ":"), default=str) + "\n").encode()
        blob = self.container.get_blob_client(f"audit/{now:%Y-%m-%d}.jsonl")
        try:
            try:
                blob.append_block(data)
            except HttpResponseError as exc:
                if exc.status_code != 404:
                    raise
                try:
                    blob.create_append_blob(
                        content_settings=ContentSettings(content_type="application/x-ndjson"),
                        if_none_match="*",
                    )
                except HttpResponseError as create_exc:
                    if create_exc.status_code not in (409, 412):
                        raise
                blob.append_block(data)
        except Exception:
            log.exception("audit write failed for action=%s job_id=%s", action, job_id)

    def read_day(self, day: datetime) -> list[dict[str, Any]]:
        blob = self.container.get_blob_client(f"audit/{day:%Y-%m-%d}.jsonl")
        text = blob.download_blob().readall().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]
