"""Stand-ins for the ``az`` and ``azd`` commands the postprovision hook runs (neither can be
installed here). Each call is appended to ``$FAKE_CLI_LOG`` as JSON; the registry's images, the app
settings, the azd environment, the Key Vault reference statuses, the proxy's revisions and the
provisions run live in ``$FAKE_CLI_STATE``.

``azd provision`` does what azd does around the Bicep: it "deploys" main.bicep with the azd
environment's values (recorded in ``provisions``; the proxy exists iff ``FOUNDRY_PROXY_IMAGE`` is
set, as ``if (!empty(proxyImage))``), writes the outputs the hook reads back into the azd
environment, and then runs the postprovision hook (``$FAKE_HOOK``) with the azd environment
exported over its own, as azd does.

Usage (through the wrappers the test writes): ``python fake_cli.py az|azd ARGS...``. Anything the
hook is not expected to run exits 2, so an unplanned call fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _az(args: list[str], state: dict[str, Any]) -> int:
    if args[:3] == ["acr", "repository", "show"]:
        image = _option(args, "--image")
        if image in state["images"]:
            return 0
        print(f"ERROR: manifest {image} not found", file=sys.stderr)
        return 1
    if args[:2] == ["acr", "build"]:
        # As az acr build: --file is relative to the context, which is packed as it is.
        dockerfile, context = _option(args, "--file"), Path(args[-1])
        if not (context / dockerfile).is_file():
            print(f"ERROR: no {dockerfile} in context {args[-1]}", file=sys.stderr)
            return 1
        if dockerfile in state.get("build_fails", ()):
            print("ERROR: run failed", file=sys.stderr)
            return 1
        image = _option(args, "--image")
        state["images"].append(image)
        state["contexts"][image] = sorted(
            p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()
        )
        return 0
    if args[:4] == ["functionapp", "config", "appsettings", "set"]:
        name, _, value = _option(args, "--settings").partition("=")
        state["app_settings"][name] = value
        return 0
    if args[:2] == ["functionapp", "restart"]:
        state["restarts"] += 1
        return 0
    if args[:2] == ["containerapp", "show"]:
        if _option(args, "--name") != PROXY_APP:
            print("ERROR: ResourceNotFound", file=sys.stderr)
            return 3
        latest, ready = state["proxy_revisions"][0]
        if len(state["proxy_revisions"]) > 1:
            state["proxy_revisions"].pop(0)
        wanted = {
            "properties.latestRevisionName": latest,
            "properties.latestReadyRevisionName": ready,
        }
        print(wanted[_option(args, "--query")])
        return 0
    if args[:1] == ["rest"]:
        setting = _option(args, "--url").split("/appsettings/")[1].split("?")[0]
        queue = state["kv_status"][setting]
        print(queue.pop(0) if len(queue) > 1 else queue[0])
        return 0
    return 2


PROXY_APP = "ca-foundry-proxy-abc"
#: The builders' LLM URL main.bicep passes the Function App when the proxy is deployed.
PROXY_URL = f"https://{PROXY_APP}.internal.example.eastus2.azurecontainerapps.io"


def _provision(state: dict[str, Any], state_path: Path) -> int:
    # The values azd exported to the hook that runs this, with what it has set since; a test
    # can make one of them get lost ("provision_drops").
    env = {k: os.environ.get(k, "") for k in ("FOUNDRY_BUILDER_IMAGE", "FOUNDRY_PROXY_IMAGE")}
    env |= state["azd_env"]
    if state.get("provision_drops"):
        env[state["provision_drops"]] = ""
    deployed = {k: env[k] for k in ("FOUNDRY_BUILDER_IMAGE", "FOUNDRY_PROXY_IMAGE")}
    state["provisions"].append(deployed)
    proxy = bool(deployed["FOUNDRY_PROXY_IMAGE"])
    state["app_settings"]["FOUNDRY_SERVICE_AZURE_BUILDER_IMAGE"] = deployed["FOUNDRY_BUILDER_IMAGE"]
    state["app_settings"]["FOUNDRY_SERVICE_BUILDER_PROXY_URL"] = PROXY_URL if proxy else ""
    state["azd_env"]["AZURE_LLM_PROXY_NAME"] = env["AZURE_LLM_PROXY_NAME"] = (
        PROXY_APP if proxy else ""
    )
    if len(state["provisions"]) > 3:
        print("fake azd: provision loop", file=sys.stderr)
        return 1
    state_path.write_text(json.dumps(state))
    hook = subprocess.run(
        ["sh", os.environ["FAKE_HOOK"]], env=os.environ | env, check=False, timeout=60
    )
    return hook.returncode


def _azd(args: list[str], state: dict[str, Any], state_path: Path) -> int:
    if args[:2] == ["env", "set"] and len(args) == 4:
        state["azd_env"][args[2]] = args[3]
        return 0
    if args == ["provision", "--no-prompt"]:
        return _provision(state, state_path)
    return 2


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    state_path = Path(os.environ["FAKE_CLI_STATE"])
    state = json.loads(state_path.read_text())
    with open(os.environ["FAKE_CLI_LOG"], "a") as log:
        log.write(json.dumps({"tool": tool, "args": args, "cwd": os.getcwd()}) + "\n")
    if tool == "azd" and args[:1] == ["provision"]:
        # The hook it runs changes the state itself: write before, never after.
        code = _azd(args, state, state_path)
        if code == 2:
            state_path.write_text(json.dumps(state))
    else:
        code = _az(args, state) if tool == "az" else _azd(args, state, state_path)
        state_path.write_text(json.dumps(state))
    if code == 2:
        print(f"fake {tool}: unexpected call {args}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
