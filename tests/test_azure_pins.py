"""Every ``azure-*`` pin in requirements.in is imported by the project's code (tests aside).

deptry cannot tell: the Azure SDKs share the ``azure`` namespace package (PEP 420), and deptry
0.25 resolves an import by its top-level name only, so one ``import azure.core`` counts every
``azure-*`` requirement as used. This test resolves each distribution to its own package (from
the files it installed) and looks for an import of that package."""

from __future__ import annotations

import functools
import re
from importlib import metadata

import pytest

from tests.test_layering import ROOT, imported_modules

SKIP_DIRS = {".venv", "node_modules", "tests", ".git", ".foundry-local"}


def azure_pins() -> list[str]:
    # The declared pins: requirements.txt is the generated lock, with every transitive azure-*
    # package (azure-mgmt-core, ...) that no code imports by design.
    lines = (ROOT / "requirements.in").read_text().splitlines()
    names = (re.split(r"[=<>~!\[; ]", line.strip(), maxsplit=1)[0] for line in lines)
    return sorted(n for n in names if n.startswith("azure-"))


def package_of(distribution: str) -> str:
    """The shallowest package the distribution installs under ``azure/``, e.g.
    ``azure-mgmt-containerregistry`` -> ``azure.mgmt.containerregistry``."""
    inits = [
        f.parts[:-1]
        for f in metadata.files(distribution) or []
        if f.name == "__init__.py" and f.parts[0] == "azure" and len(f.parts) > 2
    ]
    assert inits, distribution
    return ".".join(min(inits, key=len))


@functools.cache
def code_imports() -> frozenset[str]:
    found: set[str] = set()
    for path in ROOT.rglob("*.py"):
        if not SKIP_DIRS & set(path.relative_to(ROOT).parts):
            found |= imported_modules(path)
    return frozenset(found)


def test_the_pins_resolve_to_their_own_packages() -> None:
    assert package_of("azure-mgmt-containerregistry") == "azure.mgmt.containerregistry"
    assert package_of("azure-functions-durable") == "azure.durable_functions"
    assert "azure-mgmt-containerregistry" in azure_pins()


@pytest.mark.parametrize("distribution", azure_pins())
def test_every_azure_pin_is_imported(distribution: str) -> None:
    package = package_of(distribution)
    imports = code_imports()
    assert any(name == package or name.startswith(package + ".") for name in imports), (
        f"{distribution} is pinned in requirements.in but {package} is imported nowhere"
    )


def test_namespace_siblings_are_told_apart() -> None:
    # azure-mgmt-core is installed (every azure-mgmt-* client needs it) but no code imports it
    # directly: the search must not count an azure.mgmt.* sibling's import for it.
    package = package_of("azure-mgmt-core")
    assert package == "azure.mgmt.core"
    assert any(n.startswith("azure.mgmt.") for n in code_imports())
    assert not any(n == package or n.startswith(package + ".") for n in code_imports())
