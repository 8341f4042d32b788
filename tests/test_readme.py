"""README.md's pictures: every Mermaid block parses (structurally here, and with Mermaid's own
parser in Node), the state machine matches the code, and the benchmark chart matches
``bench/results.json``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import chart
from orchestrators.state import Phase
from shared.domain.models import ALLOWED_TRANSITIONS, JobStatus

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CHECKER = ROOT / "tools" / "mermaid-check"
DIAGRAM_TYPES = (
    "flowchart", "graph", "sequenceDiagram", "classDiagram", "stateDiagram-v2", "stateDiagram",
    "erDiagram", "journey", "gantt", "pie", "quadrantChart", "requirementDiagram", "gitGraph",
    "mindmap", "timeline", "sankey-beta", "xychart-beta", "block-beta", "packet-beta",
    "architecture-beta", "C4Context",
)  # fmt: skip
PAIRS = {")": "(", "]": "[", "}": "{"}


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.DOTALL | re.MULTILINE)


def diagram_type(source: str) -> str | None:
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("%%"):
            continue
        word = stripped.split()[0]
        return word if word in DIAGRAM_TYPES else None
    return None


def unbalanced(source: str) -> str | None:
    """The first bracket that does not pair up, outside double-quoted labels; None if all do."""
    stack: list[tuple[str, int]] = []
    for number, line in enumerate(source.splitlines(), 1):
        quoted = False
        for char in line:
            if char == '"':
                quoted = not quoted
            elif quoted:
                continue
            elif char in "([{":
                stack.append((char, number))
            elif char in PAIRS and (not stack or stack.pop()[0] != PAIRS[char]):
                return f"line {number}: unexpected {char!r}"
        if quoted:
            return f"line {number}: unclosed quote"
    return f"line {stack[-1][1]}: unclosed {stack[-1][0]!r}" if stack else None


BLOCKS = mermaid_blocks(README)


def test_the_readme_has_the_pictures() -> None:
    kinds = sorted({diagram_type(block) for block in BLOCKS}, key=str)
    assert kinds == ["flowchart", "sequenceDiagram", "stateDiagram-v2", "xychart-beta"]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_block_is_structurally_sound(block: str) -> None:
    assert diagram_type(block) is not None, block.splitlines()[0]
    assert unbalanced(block) is None, unbalanced(block)


def test_the_structural_check_can_fail() -> None:
    assert diagram_type("flowhcart LR\n  a --> b") is None
    assert unbalanced('flowchart LR\n  a["x (y"] --> b[z') == "line 2: unclosed '['"
    assert unbalanced("stateDiagram-v2\n  [*] --> a)") == "line 2: unexpected ')'"


def parse_with_mermaid(sources: list[str]) -> list[dict[str, object]]:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/bootstrap.sh checks for it)"
    assert (CHECKER / "node_modules" / "mermaid").is_dir(), (
        "the Mermaid checker is not installed: run bash scripts/bootstrap.sh"
    )
    done = subprocess.run(
        [node, str(CHECKER / "check.mjs")],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    results: list[dict[str, object]] = json.loads(done.stdout)
    return results


def test_mermaid_itself_parses_every_block() -> None:
    broken = "stateDiagram-v2\n    [*] --> \n    a --> : x\n"
    results = parse_with_mermaid([*BLOCKS, broken])
    assert results[-1]["ok"] is False  # the parser does refuse a broken diagram
    failures = [(i, r["error"]) for i, r in enumerate(results[:-1]) if not r["ok"]]
    assert failures == []


def state_diagram() -> str:
    return next(b for b in BLOCKS if diagram_type(b) == "stateDiagram-v2")


def edges(source: str) -> set[tuple[str, str]]:
    found = re.findall(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)", source, re.MULTILINE)
    return {(a, b) for a, b in found}


def test_the_state_machine_picture_has_exactly_the_allowed_status_edges() -> None:
    statuses = {s.value for s in JobStatus}
    drawn = {(a, b) for a, b in edges(state_diagram()) if a in statuses and b in statuses}
    allowed = {(a.value, b.value) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert drawn == allowed


def test_the_state_machine_picture_has_every_phase_in_order() -> None:
    source = state_diagram()
    for phase in Phase:
        assert re.search(rf"^\s*{phase.value}\b", source, re.MULTILINE), phase
    order = {phase.value: i for i, phase in enumerate(Phase)}
    phase_edges = [(a, b) for a, b in edges(source) if a in order and b in order]
    assert phase_edges and all(order[b] == order[a] + 1 for a, b in phase_edges)


def test_the_benchmark_chart_matches_the_results() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    assert chart.chart_in(README) == chart.render(results), (
        "README's benchmark chart is stale: run python -m bench.chart"
    )
    for row in results["levels"]:
        assert f"{row['submit_p50_ms']:.1f}" in chart.render(results)
