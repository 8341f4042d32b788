"""The two archives the runner uploads: the generated source and the diagnostics bundle.

``source.tar.gz`` is the builder's work directory (the contract's "working tree + .git"), without
``.buildloop``, ``node_modules``, ``target`` and ``dist`` at any depth. Regular files have the
known secret values replaced (patterns are not applied: they could change code); objects that git
stores compressed cannot be scrubbed that way, which is one more reason the proxy token is revoked
when the job ends.

``diagnostics.tar.gz`` holds the runner's and builder's logs, ``.buildloop`` notes and history,
and a metadata file, all fully scrubbed. It never holds the grant or the token.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from runner.scrub import Scrubber

EXCLUDED_FROM_SOURCE = frozenset({".buildloop", "node_modules", "target", "dist"})
#: Files larger than this are left out of the source (they cannot be scrubbed in memory).
MAX_SOURCE_FILE_BYTES = 64 * 1024 * 1024
#: A diagnostics member larger than this keeps only its last bytes.
MAX_DIAGNOSTIC_FILE_BYTES = 32 * 1024 * 1024
MAX_LISTED_FILES = 5000


def _walk(root: Path, excluded: frozenset[str]) -> Iterator[Path]:
    """Every path under ``root`` in a stable order, not descending into excluded names or
    symlinked directories."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in excluded)
        base = Path(dirpath)
        for name in sorted(dirnames):
            yield base / name
        for name in sorted(filenames):
            if name not in excluded:
                yield base / name


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, *, mode: int, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(mtime)
    tar.addfile(info, io.BytesIO(data))


def pack_source(work: Path, target: Path, scrubber: Scrubber) -> list[str]:
    """Write ``target`` (tar.gz of ``work``); returns the paths left out for their size."""
    skipped: list[str] = []
    with tarfile.open(target, "w:gz") as tar:
        for path in _walk(work, EXCLUDED_FROM_SOURCE):
            name = path.relative_to(work).as_posix()
            stat = path.lstat()
            if path.is_symlink() or path.is_dir():
                tar.add(path, arcname=name, recursive=False)
            elif path.is_file():
                if stat.st_size > MAX_SOURCE_FILE_BYTES:
                    skipped.append(name)
                    continue
                data = scrubber.scrub_literals(path.read_bytes())
                _add_bytes(tar, name, data, mode=stat.st_mode & 0o777, mtime=stat.st_mtime)
    return skipped


def _tail(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - limit))
        return fh.read()


def pack_diagnostics(
    target: Path | IO[bytes],
    *,
    logs: Path | None,
    work: Path | None,
    metadata: dict[str, Any],
    scrubber: Scrubber,
) -> None:
    """Write ``target``: ``logs/*``, ``buildloop/`` (the work dir's ``.buildloop`` markdown and
    history) and ``metadata.json`` with a listing of the work dir, every byte scrubbed. Without
    ``logs`` and ``work``: ``metadata.json`` alone."""
    listing: list[dict[str, Any]] = []
    if work is not None and work.is_dir():
        for path in _walk(work, frozenset({".git", "node_modules"})):
            if len(listing) >= MAX_LISTED_FILES:
                break
            if path.is_file() and not path.is_symlink():
                listing.append(
                    {"path": path.relative_to(work).as_posix(), "bytes": path.stat().st_size}
                )
    members: list[tuple[str, Path]] = []
    if logs is not None and logs.is_dir():
        members += [(f"logs/{p.name}", p) for p in sorted(logs.iterdir()) if p.is_file()]
    buildloop = work / ".buildloop" if work is not None else None
    if buildloop is not None and buildloop.is_dir():
        for path in _walk(buildloop, frozenset()):
            rel = path.relative_to(buildloop)
            wanted = (len(rel.parts) == 1 and path.suffix == ".md") or rel.parts[0] == "history"
            if wanted and path.is_file() and not path.is_symlink():
                members.append((f"buildloop/{rel.as_posix()}", path))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(target.open("wb")) if isinstance(target, Path) else target
        tar = stack.enter_context(tarfile.open(fileobj=out, mode="w:gz"))
        for name, path in members:
            data = scrubber.scrub(_tail(path, MAX_DIAGNOSTIC_FILE_BYTES))
            _add_bytes(tar, name, data, mode=0o644, mtime=path.stat().st_mtime)
        meta = dict(metadata, work_files=listing)
        text = scrubber.scrub(json.dumps(meta, indent=2, sort_keys=True).encode())
        _add_bytes(tar, "metadata.json", text, mode=0o644, mtime=0)
