"""The build job's image, checked without Docker: what runner/Dockerfile copies exists and is
sent by .dockerignore, it runs as a non-root user with the runner as entrypoint, its default
builder is the bundled example builder, and the runner works from its copied directory alone."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests import dockerfiles

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "runner" / "Dockerfile"


def instructions() -> list[dockerfiles.Instruction]:
    return dockerfiles.parse(DOCKERFILE.read_text())


def test_every_copy_source_exists_and_reaches_the_build_context() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    copies = [ins for ins in instructions() if ins.keyword == "COPY"]
    assert copies
    for ins in copies:
        sources, _ = dockerfiles.copy_sources(ins)
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such path"
            files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            for file in files:
                rel = file.relative_to(ROOT).as_posix()
                if "__pycache__" not in rel:
                    assert not dockerfiles.dockerignored(rel, ignore), f"{rel} is ignored"
    # ...and nothing else is sent (no .venv, no secrets in local.settings.json, no tests).
    for other in (
        "shared/storage/job_blobs.py",
        ".venv",
        "local.settings.sample.json",
        "tests/conftest.py",
    ):
        assert dockerfiles.dockerignored(other, ignore), other


def test_the_runner_is_the_entrypoint_of_a_non_root_image() -> None:
    ins = instructions()
    args = dockerfiles.arg_defaults(ins)
    (base,) = [i for i in ins if i.keyword == "FROM"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", dockerfiles.substitute(base.args, args))
    users = [i.args for i in ins if i.keyword == "USER"]
    assert users, "the image must not run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0")
    entrypoint = [i for i in ins if i.keyword == "ENTRYPOINT"][-1]
    assert entrypoint.exec_form() == ["python", "-m", "runner"]
    assert ins.index(entrypoint) > max(ins.index(i) for i in ins if i.keyword == "USER")
    env = dockerfiles.env_values(ins, args)
    copied = {
        dockerfiles.copy_sources(i)[0][0]: dockerfiles.copy_sources(i)[1]
        for i in ins
        if i.keyword == "COPY"
    }
    assert Path(copied["runner/"]) == Path(env["PYTHONPATH"]) / "runner"
    assert env["FOUNDRY_RUNNER_WORKDIR"] == "/workspace"


def test_the_default_builder_is_the_bundled_example_builder() -> None:
    ins = instructions()
    args = dockerfiles.arg_defaults(ins)
    env = dockerfiles.env_values(ins, args)
    copied = {
        dockerfiles.copy_sources(i)[1].rstrip("/"): dockerfiles.copy_sources(i)[0][0]
        for i in ins
        if i.keyword == "COPY"
    }
    installed = copied[args["BUILDER_PIP_SPEC"]]
    project = tomllib.loads((ROOT / installed / "pyproject.toml").read_text())
    scripts = project["project"]["scripts"]
    assert env["FOUNDRY_BUILDER_COMMAND"] in scripts
    module_name, _, function = scripts[env["FOUNDRY_BUILDER_COMMAND"]].partition(":")
    assert project["tool"]["setuptools"]["py-modules"] == [module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, ROOT / installed / f"{module_name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, function))
    assert any('pip install "${BUILDER_PIP_SPEC}"' in i.args for i in ins if i.keyword == "RUN")


def _pins(path: Path) -> dict[str, str]:
    """``name==version`` lines; in the hashed lock they end in `` \\`` and may carry a marker."""
    pins = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line):
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_the_runner_needs_only_the_standard_library_and_the_blob_sdk() -> None:
    runner_pins = _pins(ROOT / "runner" / "requirements.txt")
    service_pins = _pins(ROOT / "requirements.txt")
    assert set(runner_pins) == {"azure-storage-blob", "azure-core"}
    assert all(service_pins[name] == version for name, version in runner_pins.items())
    allowed = set(sys.stdlib_module_names) | {"runner", "azure"}
    for source in (ROOT / "runner").glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{source.name} imports {name}"
                if name.startswith("azure"):
                    assert name.startswith(("azure.storage.blob", "azure.core")), name


def test_the_runner_starts_from_its_own_directory_alone(tmp_path: Path) -> None:
    """As in the image: only runner/ on PYTHONPATH, no service code next to it."""
    shutil.copytree(ROOT / "runner", tmp_path / "opt" / "runner")
    result = subprocess.run(
        [sys.executable, "-m", "runner"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "opt"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot start: FOUNDRY_JOB_ID is missing" in result.stderr
