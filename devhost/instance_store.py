"""The dev host's task hub on disk: one JSON document per orchestration instance.

The Durable Azure Storage provider keeps instances and their history in Tables; the dev host
keeps the same facts (status, history, pending work items) in ``<root>/running/<id>.json`` while
an instance runs and ``<root>/finished/<id>.json`` after, so a restart reads only the running
ones. Every write goes to a temporary file that replaces the old one atomically: a crash leaves
the previous version or the new one, never half of either. A crash between writing one folder
and removing the other leaves both: the newer file wins and the older is removed on next read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class InstanceStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.running = root / "running"
        self.finished = root / "finished"
        for folder in (self.running, self.finished):
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _name(instance_id: str) -> str:
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            raise ValueError(f"instance id {instance_id!r} cannot name a file")
        return instance_id + ".json"

    def save(self, instance_id: str, document: dict[str, Any], *, running: bool) -> None:
        name = self._name(instance_id)
        target = (self.running if running else self.finished) / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(document, separators=(",", ":")))
        tmp.replace(target)
        stale = (self.finished if running else self.running) / name
        stale.unlink(missing_ok=True)

    def _current(self, name: str) -> Path | None:
        found = [p for p in (self.running / name, self.finished / name) if p.exists()]
        if len(found) == 2:
            found.sort(key=lambda p: p.stat().st_mtime_ns)
            found.pop(0).unlink(missing_ok=True)
        return found[0] if found else None

    def load(self, instance_id: str) -> dict[str, Any] | None:
        path = self._current(self._name(instance_id))
        if path is None:
            return None
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def load_running(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.running.glob("*.json")):
            if self._current(path.name) == path:
                yield dict(json.loads(path.read_text()))

    def ids(self) -> list[str]:
        return sorted(
            p.name[: -len(".json")]
            for folder in (self.running, self.finished)
            for p in folder.glob("*.json")
        )

    def delete(self, instance_id: str) -> None:
        name = self._name(instance_id)
        for folder in (self.running, self.finished):
            (folder / name).unlink(missing_ok=True)
