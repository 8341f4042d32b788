"""Turns the builder's ``source.tar.gz`` into an image build context with a usable Dockerfile:
the project's own root Dockerfile when it has one (a line starting ``FROM``), else a fallback
chosen by stack (node, python, or a static file server)."""

from __future__ import annotations

import io
import tarfile

FALLBACKS = {
    "fallback_node": (
        "package.json",
        "FROM node:22-slim\nWORKDIR /app\nCOPY . .\nRUN npm install --omit=dev\n"
        'ENV PORT=8080\nEXPOSE 8080\nCMD ["npm", "start"]\n',
    ),
    "fallback_python": (
        "requirements.txt",
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\nENV PORT=8080\n"
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


def prepare_build_context(source_targz: bytes) -> tuple[bytes, str]:
    """Returns ``(context.tar.gz, kind)`` where kind is ``project`` or a ``fallback_*`` name."""
    try:
        src = tarfile.open(fileobj=io.BytesIO(source_targz), mode="r:gz")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError) as exc:
        raise BuildContextError("source archive is not a gzip tarball") from exc
    out_buffer = io.BytesIO()
    names: dict[str, bytes] = {}
    total = 0
    with src, tarfile.open(fileobj=out_buffer, mode="w:gz") as out:
        for member in src.getmembers():
            name = member.name.lstrip("./")
            if not name or member.issym() or member.islnk() or name.startswith(("/", "..")):
                continue
            if ".." in name.split("/"):
                continue
            total += member.size
            if total > MAX_CONTEXT_BYTES:
                raise BuildContextError("source archive is too large to build")
            member.name = name
            if member.isfile():
                extracted = src.extractfile(member)
                content = extracted.read() if extracted else b""
                if name in ("Dockerfile", "package.json", "requirements.txt"):
                    names[name] = content
                if name == "Dockerfile":
                    continue  # written below, once we know whether it is usable
                out.addfile(member, io.BytesIO(content))
            elif member.isdir():
                out.addfile(member)
        kind, data = "project", names.get("Dockerfile", b"")
        if not _has_from(data):
            kind, dockerfile = "fallback_static", STATIC_FALLBACK
            for fallback, (marker, text) in FALLBACKS.items():
                if marker in names:
                    kind, dockerfile = fallback, text
                    break
            data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o644
        out.addfile(info, io.BytesIO(data))
    return out_buffer.getvalue(), kind
