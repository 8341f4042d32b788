"""The layering rules, executed: imports point one way and the pure domain stays pure.

``api/ timers/ admin/ proxy/ -> orchestrators/ activities/ -> shared/``; ``shared/domain``
imports no Azure SDK and no adapter; ``proxy/`` (its own container) needs nothing but ``shared/``;
orchestrators also obey the bans in ``orchestrators/ruff.toml``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LAYER = ("api", "timers", "admin", "devhost", "bench", "tests", "proxy")
MIDDLE_LAYER = ("orchestrators", "activities")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_under(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in modules_under(package):
        for name in imported_modules(path):
            if name.split(".")[0] in forbidden or any(
                name == f or name.startswith(f + ".") for f in forbidden
            ):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return sorted(set(bad))


def test_shared_imports_nothing_above_it() -> None:
    assert violations("shared", TOP_LAYER + MIDDLE_LAYER) == []


def test_orchestrators_and_activities_import_no_top_layer() -> None:
    assert violations("orchestrators", TOP_LAYER) == []
    assert violations("activities", TOP_LAYER) == []


def test_the_proxy_service_needs_only_shared() -> None:
    """The proxy image ships ``proxy/`` and ``shared/`` only (proxy/Dockerfile)."""
    others = tuple(p for p in TOP_LAYER if p != "proxy") + MIDDLE_LAYER + ("function_app",)
    assert violations("proxy", others) == []
    assert violations("proxy", ("azure.functions", "azure.durable_functions")) == []


def test_the_domain_is_pure() -> None:
    adapters = (
        "azure",
        "httpx",
        "shared.storage",
        "shared.pipeline",
        "shared.backends",
        "shared.services",
    )
    assert violations("shared/domain", adapters) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """Guard against a checker that cannot fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("from api.http import ApiError\nimport azure.storage.blob\n")
    assert {"api.http", "api.http.ApiError", "azure.storage.blob"} <= imported_modules(bad)


def banned_api_findings(file_name: Path, source: str) -> subprocess.CompletedProcess[str]:
    """ruff's TID251 (banned-api) over ``source`` as if it were ``file_name`` in the tree, so the
    nearest ruff config (``orchestrators/ruff.toml`` there) applies."""
    command = [sys.executable, "-m", "ruff", "check", "--select", "TID251"]
    return subprocess.run(
        [*command, "--stdin-filename", str(file_name), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, datetime\n\nX = datetime.now(UTC)\n",
        "import uuid\n\nX = uuid.uuid4()\n",
        "import time\n\ntime.sleep(1)\n",
        "from shared.services import get_services\n\nX = get_services\n",
        "from azure.storage.blob import BlobClient\n\nX = BlobClient\n",
    ],
)
def test_ruff_bans_clocks_uuids_sleep_and_io_in_orchestrators(source: str) -> None:
    result = banned_api_findings(ROOT / "orchestrators" / "example.py", source)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TID251" in result.stdout


def test_ruff_allows_the_same_code_outside_orchestrators() -> None:
    result = banned_api_findings(
        ROOT / "shared" / "example.py", "import uuid\n\nX = uuid.uuid4()\n"
    )
    assert result.returncode == 0, result.stdout
