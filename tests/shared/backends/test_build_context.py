"""The preview image's build context: the project's own Dockerfile when the source has one, a
supplied one when it has none, and only the app root's files, never an escaping path."""

from __future__ import annotations

import io
import tarfile

import pytest

from shared.backends.build_context import BuildContextError, prepare_build_context
from tests import dockerfiles


def source(files: dict[str, str], *, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def context(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}


def assert_buildable(files: dict[str, str]) -> list[dockerfiles.Instruction]:
    """What ACR Tasks needs: a Dockerfile with a FROM, whose COPY sources are in the context,
    serving on $PORT 8080."""
    instructions = dockerfiles.parse(files["Dockerfile"])
    assert instructions[0].keyword == "FROM"
    for ins in instructions:
        if ins.keyword == "COPY":
            for src in dockerfiles.copy_sources(ins)[0]:
                assert src == "." or src in files, f"COPY {src} is not in the context"
    return instructions


def test_a_project_dockerfile_is_used_as_it_is() -> None:
    own = "FROM nginx:alpine\nCOPY index.html /usr/share/nginx/html/\n"
    data, kind = prepare_build_context(
        source({"Dockerfile": own, "index.html": "<h1>hi</h1>", ".env.example": "X=1"})
    )
    files = context(data)
    assert kind == "project"
    assert files["Dockerfile"] == own
    assert ".env.example" in files  # dotfiles keep their names
    assert_buildable(files)


def test_the_example_builders_app_directory_is_the_app_root() -> None:
    own = "FROM python:3.12-slim\nCOPY . .\n"
    data, kind = prepare_build_context(
        source(
            {
                "SPEC.md": "# x",
                "TASKS.md": "- [ ] T1",
                "app/Dockerfile": own,
                "app/index.html": ".",
            },
            prefix="./",
        )
    )
    files = context(data)
    assert kind == "project"
    assert set(files) == {"Dockerfile", "index.html"}


@pytest.mark.parametrize(
    ("files", "kind", "command"),
    [
        ({"index.html": "<h1>hi</h1>"}, "fallback_static", "http.server"),
        ({"package.json": "{}", "server.js": ""}, "fallback_node", "npm"),
        ({"requirements.txt": "flask", "app.py": ""}, "fallback_python", "app.py"),
        ({"pyproject.toml": "[project]", "app.py": ""}, "fallback_python", "app.py"),
        ({"app/index.html": "<h1>hi</h1>"}, "fallback_static", "http.server"),
        # A Dockerfile without FROM is no Dockerfile: replaced.
        ({"Dockerfile": "RUN true\n", "index.html": ""}, "fallback_static", "http.server"),
    ],
)
def test_without_a_dockerfile_one_is_supplied(files, kind, command) -> None:
    data, got = prepare_build_context(source(files))
    built = context(data)
    assert got == kind
    instructions = assert_buildable(built)
    assert command in instructions[-1].args
    assert any("8080" in i.args for i in instructions if i.keyword in ("ENV", "EXPOSE"))


def test_escaping_paths_and_links_are_dropped() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("../evil", "/etc/passwd", "a/../../evil2", "index.html"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    files = context(prepare_build_context(buffer.getvalue())[0])
    assert set(files) == {"index.html", "Dockerfile"}


def test_a_broken_archive_is_a_context_error() -> None:
    with pytest.raises(BuildContextError):
        prepare_build_context(b"not a tarball")
