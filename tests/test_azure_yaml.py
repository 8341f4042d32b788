"""azure.yaml: the azd project file. Checked against the parts of azd's published schema
(schemas/v1.0/azure.yaml.json in Azure/azure-dev) this project uses, restated here, so a
misspelt hook event or hook key fails here instead of being silently ignored by azd."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "azure.yaml").read_text())

_EVENTS = ("provision", "deploy", "up", "down", "package", "restore", "publish")
HOOK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["run"],
    "properties": {
        "shell": {"enum": ["sh", "pwsh"]},
        "run": {"type": "string", "minLength": 1},
        "continueOnError": {"type": "boolean"},
        "interactive": {"type": "boolean"},
    },
}
SCHEMA = {
    "type": "object",
    "required": ["name", "services"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "services": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["host", "project"],
                "properties": {"host": {"const": "function"}, "language": {"const": "python"}},
            },
        },
        "hooks": {
            "type": "object",
            "additionalProperties": False,
            "properties": {f"{w}{e}": HOOK for e in _EVENTS for w in ("pre", "post")},
        },
    },
}


def test_azure_yaml_matches_the_schema() -> None:
    jsonschema.validate(CONFIG, SCHEMA)


def test_the_schema_refuses_a_misspelt_hook() -> None:
    bad = {**CONFIG, "hooks": {"postProvision": CONFIG["hooks"]["postprovision"]}}
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(bad))
    assert errors


def test_the_function_app_is_the_repository_root() -> None:
    # .funcignore (tests/test_funcignore.py) decides what of the root ships.
    assert CONFIG["services"]["api"]["project"] == "."
    assert (ROOT / CONFIG["services"]["api"]["project"] / ".funcignore").is_file()


def test_postprovision_runs_the_builder_image_hook() -> None:
    hook = CONFIG["hooks"]["postprovision"]
    script = ROOT / hook["run"]
    assert hook["run"] == "infra/hooks/postprovision.sh"
    assert hook["shell"] == "sh" and hook["continueOnError"] is False
    assert script.read_text().startswith("#!/bin/sh\n")
    assert os.access(script, os.X_OK)
