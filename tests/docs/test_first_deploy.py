"""docs/first-deploy.md and the runbook's deploy section name only things that exist: files in
the repository, azd variables the parameters file reads, outputs main.bicep writes, settings
the code reads."""

from __future__ import annotations

import json
import re

import pytest

from admin.cli import ENVIRONMENT
from tests.infra import bicep
from tests.infra.test_drift import names_the_code_reads

DOCS = {
    name: (bicep.ROOT / "docs" / name).read_text() for name in ("first-deploy.md", "runbook.md")
}
PARAMETERS = (bicep.INFRA / "main.parameters.json").read_text()
AZD_VARIABLES = set(re.findall(r"\$\{(\w+)", PARAMETERS)) | {"AZURE_ENV_NAME"}
OUTPUTS = set(bicep.load(bicep.MAIN).outputs)
#: Read by the operator CLI (its --help table), or Knowmler's own setting (runbook, cutover).
OTHER = {name for name, _ in ENVIRONMENT} | {"FOUNDRY_API_URL"}
#: Named on purpose though absent: the file the upgrade notes replace, and the builder's source
#: (another change adds runner/).
NOT_HERE = {"infra/app/resources.bicep", "runner/Dockerfile"}


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_variable_named_is_real(doc: str) -> None:
    names = set(
        re.findall(r"\b((?:AZURE|FOUNDRY|APPLICATIONINSIGHTS)_[A-Z0-9_]*[A-Z0-9])\b", DOCS[doc])
    )
    known = AZD_VARIABLES | OUTPUTS | names_the_code_reads() | OTHER
    assert names and names <= known, names - known


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_azd_env_set_only_sets_what_provisioning_reads(doc: str) -> None:
    names = set(re.findall(r"azd env set (\w+)", DOCS[doc]))
    assert names and names <= AZD_VARIABLES, names - AZD_VARIABLES


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_repository_path_named_exists(doc: str) -> None:
    paths = set(
        re.findall(
            r"`((?:infra|docs|runner|tests)/[\w./-]+|\.funcignore|\.dockerignore)`", DOCS[doc]
        )
    )
    missing = {p for p in paths - NOT_HERE if not (bicep.ROOT / p).exists()}
    assert paths and not missing, missing


def test_the_secret_table_matches_the_parameters_file() -> None:
    mapping = {k: v["value"] for k, v in json.loads(PARAMETERS)["parameters"].items()}
    for param, variable in (
        ("foundryApiKeys", "FOUNDRY_API_KEYS"),
        ("anthropicApiKey", "FOUNDRY_ANTHROPIC_API_KEY"),
    ):
        assert mapping[param] == "${" + variable + "}"
        assert f"| `{param}` | `{variable}` |" in DOCS["first-deploy.md"]
