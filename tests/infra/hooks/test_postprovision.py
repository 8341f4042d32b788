"""infra/hooks/postprovision.sh, run by POSIX sh against stand-in ``az``/``azd`` commands
(tests/infra/hooks/fake_cli.py) in a scratch copy of the repository layout."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
HOOK = ROOT / "infra" / "hooks" / "postprovision.sh"
FAKE_CLI = Path(__file__).with_name("fake_cli.py")
REGISTRY = "crfoundryabc"
ENDPOINT = f"{REGISTRY}.azurecr.io"
QUICKSTART = "mcr.microsoft.com/k8se/quickstart-jobs:latest"

DOCKERFILE = """\
FROM python:3.11-slim AS base
COPY --from=base /usr/lib/stage-only /opt/
COPY runner/ /app/runner/
COPY ["shared/domain/stream_progress.py", "/app/shared/"]
ADD --chown=1000:1000 extra/*.txt \\
    /app/extra/
ENTRYPOINT ["python", "/app/runner/main.py"]
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]
    state: dict[str, Any]

    def az(self, *prefix: str) -> list[list[str]]:
        return [
            c["args"]
            for c in self.calls
            if c["tool"] == "az" and c["args"][: len(prefix)] == list(prefix)
        ]

    @property
    def image(self) -> str:
        return str(self.state["azd_env"]["FOUNDRY_BUILDER_IMAGE"])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "infra" / "hooks").mkdir(parents=True)
    shutil.copy(HOOK, root / "infra" / "hooks" / "postprovision.sh")
    files = {
        "runner/Dockerfile": DOCKERFILE,
        "runner/main.py": "print('build')\n",
        "runner/lib/stream.py": "STREAM = 'stream.jsonl'\n",
        "shared/domain/stream_progress.py": "FIELDS = ()\n",
        "extra/a.txt": "a\n",
        "api/unrelated.py": "X = 1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def run_hook(repo: Path, state: dict[str, Any] | None = None, **env: str) -> Run:
    work = repo.parent
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("az", "azd"):
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    state_path, log_path = work / "state.json", work / "calls.jsonl"
    full_state: dict[str, Any] = {
        "images": [],
        "app_settings": {},
        "azd_env": {},
        "restarts": 0,
        "kv_status": {
            "FOUNDRY_SERVICE_API_KEYS": ["Resolved"],
            "FOUNDRY_SERVICE_ANTHROPIC_API_KEY": ["Resolved"],
        },
    }
    full_state.update(state or {})
    state_path.write_text(json.dumps(full_state))
    log_path.write_text("")
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLI_STATE": str(state_path),
        "FAKE_CLI_LOG": str(log_path),
        "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
        "AZURE_RESOURCE_GROUP": "rg-foundry-test",
        "AZURE_FUNCTION_NAME": "func-foundry-abc",
        "AZURE_CONTAINER_REGISTRY_NAME": REGISTRY,
        "AZURE_CONTAINER_REGISTRY_ENDPOINT": ENDPOINT,
        "FOUNDRY_HOOK_POLL_SECS": "0",
    } | env
    done = subprocess.run(
        ["sh", str(repo / "infra" / "hooks" / "postprovision.sh")],
        cwd=work,  # azd's working directory must not matter: the hook finds the repo itself
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = [json.loads(line) for line in log_path.read_text().splitlines()]
    return Run(done.returncode, done.stdout, done.stderr, calls, json.loads(state_path.read_text()))


def test_first_deploy_builds_the_builder_into_the_new_registry(repo: Path) -> None:
    run = run_hook(repo)
    assert run.code == 0, run.stderr
    [build] = run.az("acr", "build")
    tag = build[build.index("--image") + 1].split(":")[1]
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert build[build.index("--registry") + 1] == REGISTRY
    assert build[build.index("--file") + 1] == "runner/Dockerfile"
    assert build[-1] == "."  # the build context is the repository root ...
    assert next(c for c in run.calls if c["args"][:2] == ["acr", "build"])["cwd"] == str(repo)
    image = f"{ENDPOINT}/foundry-builder:{tag}"
    assert run.state["images"] == [f"foundry-builder:{tag}"]
    # ... and the app, and the next provision, use exactly that image.
    assert run.state["app_settings"] == {"FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE": image}
    assert run.state["azd_env"] == {
        "FOUNDRY_BUILDER_IMAGE": image,
        "FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE": image,
    }
    for args in run.az():
        if args[0] != "rest":  # the ARM path names the subscription itself
            assert "--subscription" in args, args
    assert "Key Vault references resolved" in run.stdout


def test_rerun_with_an_unchanged_builder_changes_nothing(repo: Path) -> None:
    first = run_hook(repo)
    again = run_hook(repo, {"images": first.state["images"]}, FOUNDRY_BUILDER_IMAGE=first.image)
    assert again.code == 0, again.stderr
    assert again.az("acr", "repository", "show")
    assert not again.az("acr", "build")
    assert not again.az("functionapp", "config")  # no needless restart
    assert again.state["azd_env"] == {}


@pytest.mark.parametrize(
    ("path", "rebuilds"),
    [
        ("runner/main.py", True),  # COPY runner/
        ("runner/lib/stream.py", True),  # nested under a copied directory
        ("runner/Dockerfile", True),
        ("shared/domain/stream_progress.py", True),  # exec-form COPY ["...", "..."]
        ("extra/a.txt", True),  # ADD with a flag, a glob and a line continuation
        ("api/unrelated.py", False),  # not in the image
        ("runner/__pycache__/main.cpython-311.pyc", False),  # bytecode is not content
    ],
)
def test_the_tag_follows_exactly_what_the_image_copies(
    repo: Path, path: str, rebuilds: bool
) -> None:
    before = run_hook(repo).image
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as fh:
        fh.write("# changed\n")
    after = run_hook(repo)
    assert after.code == 0, after.stderr
    assert (after.image != before) is rebuilds


def test_the_quickstart_image_is_refused(repo: Path) -> None:
    run = run_hook(repo, FOUNDRY_BUILDER_IMAGE=QUICKSTART)
    assert run.code != 0
    assert "stream.jsonl" in run.stderr and "build_crashed" in run.stderr
    assert run.calls == []


def test_an_image_from_another_registry_is_used_as_is(repo: Path) -> None:
    run = run_hook(repo, FOUNDRY_BUILDER_IMAGE="builders.example.com/foundry-builder:7")
    assert run.code == 0, run.stderr
    assert not run.az("acr")
    # provision already wrote it from FOUNDRY_BUILDER_IMAGE: nothing to change
    assert run.state["app_settings"] == {} and run.state["azd_env"] == {}


def test_an_image_of_this_registry_is_rebuilt_when_the_builder_changed(repo: Path) -> None:
    stale = f"{ENDPOINT}/foundry-builder:000000000000"
    run = run_hook(repo, FOUNDRY_BUILDER_IMAGE=stale)
    assert run.code == 0, run.stderr
    assert run.az("acr", "build")
    assert run.image != stale
    assert run.state["app_settings"]["FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE"] == run.image


def test_a_missing_dockerfile_fails_before_touching_azure(repo: Path) -> None:
    (repo / "runner" / "Dockerfile").unlink()
    run = run_hook(repo)
    assert run.code != 0
    assert "runner/Dockerfile is missing" in run.stderr
    assert run.calls == []


def test_a_missing_copy_source_fails_before_touching_azure(repo: Path) -> None:
    shutil.rmtree(repo / "shared")
    run = run_hook(repo)
    assert run.code != 0
    assert "shared/domain/stream_progress.py" in run.stderr
    assert run.calls == []


def test_a_failed_build_leaves_the_app_setting_alone(repo: Path) -> None:
    run = run_hook(repo, {"build_fails": True})
    assert run.code != 0
    assert run.state["app_settings"] == {} and run.state["azd_env"] == {}


def test_unresolved_key_vault_references_are_restarted_until_they_resolve(repo: Path) -> None:
    statuses = ["Initialized"] + ["AccessToKeyVaultDenied"] * 8 + ["Resolved"]
    run = run_hook(
        repo,
        {
            "kv_status": {
                "FOUNDRY_SERVICE_API_KEYS": statuses,
                "FOUNDRY_SERVICE_ANTHROPIC_API_KEY": ["Resolved"],
            }
        },
        FOUNDRY_HOOK_RESTART_EVERY="4",
    )
    assert run.code == 0, run.stderr
    assert run.state["restarts"] == 2
    assert "FOUNDRY_SERVICE_API_KEYS=AccessToKeyVaultDenied" in run.stdout


def test_references_that_never_resolve_fail_the_hook(repo: Path) -> None:
    run = run_hook(
        repo,
        {
            "kv_status": {
                "FOUNDRY_SERVICE_API_KEYS": ["Resolved"],
                "FOUNDRY_SERVICE_ANTHROPIC_API_KEY": ["SecretNotFound"],
            }
        },
        FOUNDRY_HOOK_CHECKS="5",
    )
    assert run.code != 0
    assert "FOUNDRY_SERVICE_ANTHROPIC_API_KEY=SecretNotFound" in run.stderr
    assert "FOUNDRY_SERVICE_API_KEYS" not in run.stderr
    assert len(run.az("rest")) == 10  # 5 checks of 2 references


def test_it_needs_the_provisioned_azd_environment(repo: Path) -> None:
    run = run_hook(repo, AZURE_CONTAINER_REGISTRY_ENDPOINT="")
    assert run.code != 0
    assert "AZURE_CONTAINER_REGISTRY_ENDPOINT" in run.stderr
    assert run.calls == []
