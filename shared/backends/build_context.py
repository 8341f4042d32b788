"""Turns the builder's ``source.tar.gz`` into an image build context with a usable Dockerfile.

What the source must contain (docs/build-job.md, "What the source must contain"):

* The **app root** is the archive's root, or its ``app/`` directory when the root has none of
  the files below but ``app/`` does (the bundled example builder's layout).
* A ``Dockerfile`` at the app root with a ``FROM`` line is used as it is (kind ``project``).
* Otherwise a Dockerfile is supplied, by what the app root holds: ``package.json``
  (``fallback_node``: ``npm start``), ``requirements.txt`` or ``pyproject.toml``
  (``fallback_python``: ``python app.py``), else a static file server for the whole app root
  (``fallback_static``: ``index.html`` is the page).

Every image serves on ``$PORT`` (8080). Entries that could escape the context (absolute paths,
``..``, links) are dropped; only the app root's subtree goes into the context.
"""

from __future__ import annotations

import io
import tarfile

#: Files that make a directory an app root.
APP_MARKERS = ("Dockerfile", "package.json", "requirements.txt", "pyproject.toml", "index.html")
#: Where an app may live when the archive's root is not one.
APP_SUBDIRECTORY = "app/"
FALLBACKS = {
    "fallback_node": (
        ("package.json",),
        "FROM node:22-slim\nWORKDIR /app\nCOPY . .\nRUN npm install --omit=dev\n"
        'ENV PORT=8080\nEXPOSE 8080\nCMD ["npm", "start"]\n',
    ),
    "fallback_python": (
        ("requirements.txt", "pyproject.toml"),
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\n"
        "RUN if [ -f requirements.txt ]; then pip install --no-cache-dir -r requirements.txt; "
        "else pip install --no-cache-dir .; fi\nENV PORT=8080\n"
        'EXPOSE 8080\nCMD ["sh", "-c", "python app.py"]\n',
    ),
}
STATIC_FALLBACK = (
    "FROM python:3.12-slim\nWORKDIR /srv\nCOPY . .\nENV PORT=8080\nEXPOSE 8080\n"
    'CMD ["sh", "-c", "python -m http.server ${PORT} --bind 0.0.0.0"]\n'
)
MAX_CONTEXT_BYTES = 200 * 1024 * 1024


class BuildContextError(ValueError):
    """The source archive cannot be turned into a build context."""


def _has_from(dockerfile: bytes) -> bool:
    return any(line.strip().upper().startswith(b"FROM ") for line in dockerfile.splitlines())


def _safe_name(raw: str) -> str | None:
    """The member's path relative to the archive root, or ``None`` if it could escape it."""
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if not name or name == "." or name.startswith("/") or ".." in name.split("/"):
        return None
    return name


def _app_root(files: set[str]) -> str:
    if any(marker in files for marker in APP_MARKERS):
        return ""
    if any(APP_SUBDIRECTORY + marker in files for marker in APP_MARKERS):
        return APP_SUBDIRECTORY
    return ""


def prepare_build_context(source_targz: bytes) -> tuple[bytes, str]:
    """Returns ``(context.tar.gz, kind)`` where kind is ``project`` or a ``fallback_*`` name."""
    try:
        src = tarfile.open(fileobj=io.BytesIO(source_targz), mode="r:gz")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError) as exc:
        raise BuildContextError("source archive is not a gzip tarball") from exc
    entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []
    total = 0
    with src:
        try:
            members = src.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BuildContextError("source archive is corrupt") from exc
        for member in members:
            name = _safe_name(member.name)
            if name is None or not (member.isfile() or member.isdir()):
                continue
            total += member.size
            if total > MAX_CONTEXT_BYTES:
                raise BuildContextError("source archive is too large to build")
            content = None
            if member.isfile():
                extracted = src.extractfile(member)
                content = extracted.read() if extracted else b""
            entries.append((name, member, content))
    root = _app_root({name for name, _, content in entries if content is not None})
    files = {
        name[len(root) :]: content
        for name, _, content in entries
        if content is not None and name.startswith(root)
    }
    out_buffer = io.BytesIO()
    with tarfile.open(fileobj=out_buffer, mode="w:gz") as out:
        for name, member, content in entries:
            if not name.startswith(root) or name == root.rstrip("/"):
                continue
            member.name = name[len(root) :]
            if member.name == "Dockerfile":
                continue  # written below, once we know whether it is usable
            out.addfile(member, io.BytesIO(content) if content is not None else None)
        kind, data = "project", files.get("Dockerfile") or b""
        if not _has_from(data):
            kind, dockerfile = "fallback_static", STATIC_FALLBACK
            for fallback, (markers, text) in FALLBACKS.items():
                if any(marker in files for marker in markers):
                    kind, dockerfile = fallback, text
                    break
            data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o644
        out.addfile(info, io.BytesIO(data))
    return out_buffer.getvalue(), kind
