"""Stand-ins for the ``az`` and ``azd`` commands the postprovision hook runs (neither can be
installed here). Each call is appended to ``$FAKE_CLI_LOG`` as JSON; the registry's images, the app
settings, the azd environment and the Key Vault reference statuses live in ``$FAKE_CLI_STATE``.

Usage (through the wrappers the test writes): ``python fake_cli.py az|azd ARGS...``. Anything the
hook is not expected to run exits 2, so an unplanned call fails the test.
"""

from __future__ import annotations

import json
import os
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
        dockerfile = _option(args, "--file")
        if not Path(dockerfile).is_file() or args[-1] != ".":
            print(f"ERROR: no {dockerfile} in context {args[-1]}", file=sys.stderr)
            return 1
        if state.get("build_fails"):
            print("ERROR: run failed", file=sys.stderr)
            return 1
        state["images"].append(_option(args, "--image"))
        return 0
    if args[:4] == ["functionapp", "config", "appsettings", "set"]:
        name, _, value = _option(args, "--settings").partition("=")
        state["app_settings"][name] = value
        return 0
    if args[:2] == ["functionapp", "restart"]:
        state["restarts"] += 1
        return 0
    if args[:1] == ["rest"]:
        setting = _option(args, "--url").split("/appsettings/")[1].split("?")[0]
        queue = state["kv_status"][setting]
        print(queue.pop(0) if len(queue) > 1 else queue[0])
        return 0
    return 2


def _azd(args: list[str], state: dict[str, Any]) -> int:
    if args[:2] == ["env", "set"] and len(args) == 4:
        state["azd_env"][args[2]] = args[3]
        return 0
    return 2


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    state_path = Path(os.environ["FAKE_CLI_STATE"])
    state = json.loads(state_path.read_text())
    with open(os.environ["FAKE_CLI_LOG"], "a") as log:
        log.write(json.dumps({"tool": tool, "args": args, "cwd": os.getcwd()}) + "\n")
    code = (_az if tool == "az" else _azd)(args, state)
    state_path.write_text(json.dumps(state))
    if code == 2:
        print(f"fake {tool}: unexpected call {args}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
