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
#: The real one: the staged context must follow what it copies.
PROXY_DOCKERFILE = (ROOT / "proxy" / "Dockerfile").read_text()
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

    @property
    def proxy_image(self) -> str:
        return str(self.state["azd_env"]["FOUNDRY_PROXY_IMAGE"])

    def built(self, dockerfile: str) -> list[list[str]]:
        return [b for b in self.az("acr", "build") if b[b.index("--file") + 1] == dockerfile]

    def azd(self, *prefix: str) -> list[list[str]]:
        return [
            c["args"]
            for c in self.calls
            if c["tool"] == "azd" and c["args"][: len(prefix)] == list(prefix)
        ]


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
        "proxy/Dockerfile": PROXY_DOCKERFILE,
        "proxy/app.py": "APP = 1\n",
        "proxy/__pycache__/app.cpython-311.pyc": "bytecode",
        "shared/llm_proxy.py": "PROXY = 1\n",
        "requirements.txt": "uvicorn==0.30.0 --hash=sha256:00\n",
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
        "contexts": {},
        "app_settings": {},
        "azd_env": {},
        "provisions": [],
        "restarts": 0,
        # Only the app's own reference: asking for any other (the Anthropic key) is a KeyError.
        "kv_status": {"FOUNDRY_SERVICE_API_KEYS": ["Resolved"]},
        "proxy_revisions": [["ca-foundry-proxy-abc--r1", "ca-foundry-proxy-abc--r1"]],
    }
    full_state.update(state or {})
    state_path.write_text(json.dumps(full_state))
    log_path.write_text("")
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLI_STATE": str(state_path),
        "FAKE_CLI_LOG": str(log_path),
        "FAKE_HOOK": str(repo / "infra" / "hooks" / "postprovision.sh"),
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


PROXY_APP = "ca-foundry-proxy-abc"


def deployed(run: Run) -> dict[str, str]:
    """What a later run gets from azd: the images recorded and the proxy the provision made."""
    return {
        "FOUNDRY_BUILDER_IMAGE": run.image,
        "FOUNDRY_PROXY_IMAGE": run.proxy_image,
        "AZURE_LLM_PROXY_NAME": PROXY_APP,
    }


def test_first_deploy_builds_the_builder_into_the_new_registry(repo: Path) -> None:
    run = run_hook(repo)
    assert run.code == 0, run.stderr
    [build] = run.built("runner/Dockerfile")
    tag = build[build.index("--image") + 1].split(":")[1]
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert build[build.index("--registry") + 1] == REGISTRY
    assert build[-1] == "."  # the build context is the repository root ...
    assert next(c for c in run.calls if c["args"] == build)["cwd"] == str(repo)
    image = f"{ENDPOINT}/foundry-builder:{tag}"
    assert f"foundry-builder:{tag}" in run.state["images"]
    # ... and the app, and the next provision, use exactly that image: set on the app at once
    # (the only direct app setting) and provisioned again by the second pass.
    [direct] = run.az("functionapp", "config", "appsettings", "set")
    assert direct[direct.index("--settings") + 1] == f"FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE={image}"
    assert run.state["app_settings"]["FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE"] == image
    assert run.state["azd_env"]["FOUNDRY_BUILDER_IMAGE"] == image
    assert run.state["azd_env"]["FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE"] == image
    for args in run.az():
        if args[0] != "rest":  # the ARM path names the subscription itself
            assert "--subscription" in args, args
    assert "Key Vault references resolved" in run.stdout


def test_first_deploy_builds_the_proxy_from_a_staged_context(repo: Path) -> None:
    run = run_hook(repo)
    assert run.code == 0, run.stderr
    [build] = run.built("proxy/Dockerfile")
    repository, tag = build[build.index("--image") + 1].split(":")
    assert repository == "foundry-llm-proxy"
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert build[build.index("--registry") + 1] == REGISTRY
    assert run.proxy_image == f"{ENDPOINT}/foundry-llm-proxy:{tag}"
    # az acr build reads only the context's own .dockerignore: the context holds exactly what
    # proxy/Dockerfile copies (requirements.txt, shared/, proxy/), no bytecode, nothing else ...
    assert run.state["contexts"][f"foundry-llm-proxy:{tag}"] == [
        "proxy/Dockerfile",
        "proxy/app.py",
        "requirements.txt",
        "shared/domain/stream_progress.py",
        "shared/llm_proxy.py",
    ]
    # ... staged outside the repository, and removed afterwards.
    context = Path(build[-1])
    assert context.is_absolute() and repo not in context.parents and not context.exists()


def test_first_deploy_provisions_a_second_time_to_wire_the_proxy(repo: Path) -> None:
    run = run_hook(repo)
    assert run.code == 0, run.stderr
    # Once, with both images recorded: main.bicep then deploys the proxy module and sets the
    # app's FOUNDRY_SERVICE_BUILDER_PROXY_URL from its url output.
    assert run.azd("provision") == [["provision", "--no-prompt"]]
    assert run.state["provisions"] == [
        {"FOUNDRY_BUILDER_IMAGE": run.image, "FOUNDRY_PROXY_IMAGE": run.proxy_image}
    ]
    assert run.state["app_settings"]["FOUNDRY_SERVICE_BUILDER_PROXY_URL"].startswith(
        f"https://{PROXY_APP}.internal."
    )
    # The second pass's own hook built nothing more, and did the checks: both images once.
    assert len(run.az("acr", "build")) == 2
    assert len(run.az("acr", "repository", "show")) == 4
    assert "second pass" in run.stdout
    assert "Key Vault references resolved" in run.stdout
    assert f"LLM proxy revision {PROXY_APP}--r1 is ready" in run.stdout
    proxy_checks = run.az("containerapp", "show")
    assert proxy_checks and all(a[a.index("--name") + 1] == PROXY_APP for a in proxy_checks)
    assert run.stdout.index("Key Vault references resolved") < run.stdout.index("second pass done")


def test_rerun_with_unchanged_images_changes_nothing(repo: Path) -> None:
    first = run_hook(repo)
    again = run_hook(repo, {"images": first.state["images"]}, **deployed(first))
    assert again.code == 0, again.stderr
    assert len(again.az("acr", "repository", "show")) == 2
    assert not again.az("acr", "build")
    assert not again.az("functionapp", "config")  # no needless restart
    assert not again.azd("provision")
    assert again.state["azd_env"] == {}
    assert "Key Vault references resolved" in again.stdout
    assert "LLM proxy revision" in again.stdout


@pytest.mark.parametrize(
    ("path", "builder", "proxy"),
    [
        ("runner/main.py", True, False),  # COPY runner/
        ("runner/lib/stream.py", True, False),  # nested under a copied directory
        ("runner/Dockerfile", True, False),
        ("shared/domain/stream_progress.py", True, True),  # exec-form COPY; the proxy's shared/
        ("extra/a.txt", True, False),  # ADD with a flag, a glob and a line continuation
        ("proxy/app.py", False, True),
        ("proxy/Dockerfile", False, True),
        ("requirements.txt", False, True),  # the proxy's hashed lock
        ("shared/llm_proxy.py", False, True),
        ("api/unrelated.py", False, False),  # in neither image
        ("runner/__pycache__/main.cpython-311.pyc", False, False),  # bytecode is not content
        ("proxy/__pycache__/app.cpython-311.pyc", False, False),
    ],
)
def test_the_tags_follow_exactly_what_each_image_copies(
    repo: Path, path: str, builder: bool, proxy: bool
) -> None:
    before = run_hook(repo)
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as fh:
        fh.write("# changed\n")
    after = run_hook(repo, {"images": before.state["images"]}, **deployed(before))
    assert after.code == 0, after.stderr
    assert (after.state["azd_env"].get("FOUNDRY_BUILDER_IMAGE", before.image) != before.image) is (
        builder
    )
    assert bool(after.built("runner/Dockerfile")) is builder
    assert bool(after.built("proxy/Dockerfile")) is proxy
    # A new proxy image is deployed by a second provision; an unchanged one needs none.
    assert bool(after.azd("provision")) is proxy
    if proxy:
        assert after.proxy_image != before.proxy_image
        assert after.state["provisions"][-1]["FOUNDRY_PROXY_IMAGE"] == after.proxy_image


def test_the_quickstart_image_is_refused(repo: Path) -> None:
    run = run_hook(repo, FOUNDRY_BUILDER_IMAGE=QUICKSTART)
    assert run.code != 0
    assert "stream.jsonl" in run.stderr and "build_crashed" in run.stderr
    assert run.calls == []


def test_an_image_from_another_registry_is_used_as_is(repo: Path) -> None:
    first = run_hook(repo)
    run = run_hook(
        repo,
        {"images": first.state["images"]},
        **deployed(first) | {"FOUNDRY_BUILDER_IMAGE": "builders.example.com/foundry-builder:7"},
    )
    assert run.code == 0, run.stderr
    assert not any("foundry-builder" in " ".join(a) for a in run.az("acr"))
    assert not run.az("acr", "build")
    # provision already wrote it from FOUNDRY_BUILDER_IMAGE: nothing to change
    assert run.state["app_settings"] == {} and run.state["azd_env"] == {}


def test_a_proxy_image_from_another_registry_is_refused(repo: Path) -> None:
    # The proxy's identity may pull from this deployment's registry only (proxy.bicep).
    run = run_hook(repo, FOUNDRY_PROXY_IMAGE="proxies.example.com/foundry-llm-proxy:7")
    assert run.code != 0
    assert "FOUNDRY_PROXY_IMAGE" in run.stderr and ENDPOINT in run.stderr
    assert run.calls == []


def test_an_image_of_this_registry_is_rebuilt_when_the_builder_changed(repo: Path) -> None:
    stale = f"{ENDPOINT}/foundry-builder:000000000000"
    run = run_hook(repo, FOUNDRY_BUILDER_IMAGE=stale)
    assert run.code == 0, run.stderr
    assert run.built("runner/Dockerfile")
    assert run.image != stale
    assert run.state["app_settings"]["FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE"] == run.image


def test_a_stale_proxy_image_is_rebuilt_and_provisioned(repo: Path) -> None:
    first = run_hook(repo)
    stale = f"{ENDPOINT}/foundry-llm-proxy:000000000000"
    run = run_hook(
        repo, {"images": first.state["images"]}, **deployed(first) | {"FOUNDRY_PROXY_IMAGE": stale}
    )
    assert run.code == 0, run.stderr
    assert not run.az("acr", "build")  # the current content is already in the registry
    assert run.proxy_image == first.proxy_image != stale
    assert run.state["provisions"] == [
        {"FOUNDRY_BUILDER_IMAGE": first.image, "FOUNDRY_PROXY_IMAGE": first.proxy_image}
    ]


@pytest.mark.parametrize("dockerfile", ["runner/Dockerfile", "proxy/Dockerfile"])
def test_a_missing_dockerfile_fails_before_touching_azure(repo: Path, dockerfile: str) -> None:
    (repo / dockerfile).unlink()
    run = run_hook(repo)
    assert run.code != 0
    assert f"{dockerfile} is missing" in run.stderr
    assert run.calls == []


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ("shared", "shared/domain/stream_progress.py"),  # the builder's first
        ("requirements.txt", "requirements.txt"),  # the proxy's
    ],
)
def test_a_missing_copy_source_fails_before_touching_azure(
    repo: Path, removed: str, named: str
) -> None:
    target = repo / removed
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    run = run_hook(repo)
    assert run.code != 0
    assert named in run.stderr
    assert run.calls == []


def test_a_failed_builder_build_leaves_the_app_setting_alone(repo: Path) -> None:
    run = run_hook(repo, {"build_fails": ["runner/Dockerfile"]})
    assert run.code != 0
    assert run.state["app_settings"] == {} and run.state["azd_env"] == {}
    assert not run.azd("provision")


def test_a_failed_proxy_build_records_nothing_and_does_not_provision(repo: Path) -> None:
    run = run_hook(repo, {"build_fails": ["proxy/Dockerfile"]})
    assert run.code != 0
    assert "proxy/Dockerfile" in run.stderr
    assert "FOUNDRY_PROXY_IMAGE" not in run.state["azd_env"]
    assert not run.azd("provision")


def test_the_second_pass_never_provisions_again(repo: Path) -> None:
    # A provision that did not deploy the image the hook recorded (here: the azd environment
    # lost it) must stop the hook, not start a third provision.
    run = run_hook(repo, {"provision_drops": "FOUNDRY_PROXY_IMAGE"})
    assert run.code != 0
    assert len(run.state["provisions"]) == 1
    assert "the second provision deployed FOUNDRY_PROXY_IMAGE=(none)" in run.stderr
    assert "the second provision (LLM proxy) failed" in run.stderr


def test_a_recorded_proxy_image_without_a_deployed_proxy_fails(repo: Path) -> None:
    first = run_hook(repo)
    run = run_hook(
        repo, {"images": first.state["images"]}, **deployed(first) | {"AZURE_LLM_PROXY_NAME": ""}
    )
    assert run.code != 0
    assert "AZURE_LLM_PROXY_NAME is empty" in run.stderr and "azd provision" in run.stderr
    assert not run.azd("provision")


def test_unresolved_key_vault_references_are_restarted_until_they_resolve(repo: Path) -> None:
    statuses = ["Initialized"] + ["AccessToKeyVaultDenied"] * 8 + ["Resolved"]
    run = run_hook(
        repo,
        {"kv_status": {"FOUNDRY_SERVICE_API_KEYS": statuses}},
        FOUNDRY_HOOK_RESTART_EVERY="4",
    )
    assert run.code == 0, run.stderr
    assert run.state["restarts"] == 2
    assert "FOUNDRY_SERVICE_API_KEYS=AccessToKeyVaultDenied" in run.stdout


def test_references_that_never_resolve_fail_the_hook(repo: Path) -> None:
    run = run_hook(
        repo,
        {"kv_status": {"FOUNDRY_SERVICE_API_KEYS": ["SecretNotFound"]}},
        FOUNDRY_HOOK_CHECKS="5",
    )
    assert run.code != 0
    assert "FOUNDRY_SERVICE_API_KEYS=SecretNotFound" in run.stderr
    assert len(run.az("rest")) == 5  # 5 checks of the app's one reference
    # The Anthropic key is the proxy's: the Function App has no such setting to check.
    assert not any("ANTHROPIC" in " ".join(a) for a in run.az("rest"))


def test_the_proxy_revision_is_waited_for(repo: Path) -> None:
    revisions = [["r1", ""], ["r1", ""], ["r1", "r1"]]
    run = run_hook(repo, {"proxy_revisions": revisions})
    assert run.code == 0, run.stderr
    assert "waiting for the LLM proxy revision r1 (ready: none)" in run.stdout
    assert "LLM proxy revision r1 is ready" in run.stdout


def test_a_proxy_revision_that_never_gets_ready_fails_the_hook(repo: Path) -> None:
    # e.g. its identity cannot read the Anthropic secret yet, or cannot pull the image
    run = run_hook(repo, {"proxy_revisions": [["r2", "r1"]]}, FOUNDRY_HOOK_CHECKS="3")
    assert run.code != 0
    assert "LLM proxy revision r2 still not ready after 3 checks (ready: r1)" in run.stderr


def test_it_needs_the_provisioned_azd_environment(repo: Path) -> None:
    run = run_hook(repo, AZURE_CONTAINER_REGISTRY_ENDPOINT="")
    assert run.code != 0
    assert "AZURE_CONTAINER_REGISTRY_ENDPOINT" in run.stderr
    assert run.calls == []
