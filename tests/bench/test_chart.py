"""bench.chart: the README's benchmark charts, rendered from results between two markers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import chart

RESULTS = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results.json").read_text())


def test_update_replaces_only_the_marked_block() -> None:
    readme = f"# Title\n\nbefore\n\n{chart.START}\nold chart\n{chart.END}\n\nafter\n"
    updated = chart.update(readme, RESULTS)
    assert updated.startswith("# Title\n\nbefore\n\n") and updated.endswith("\n\nafter\n")
    assert "old chart" not in updated
    assert chart.chart_in(updated) == chart.render(RESULTS)
    assert chart.update(updated, RESULTS) == updated  # a rerun with the same results: no change


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="bench-chart"):
        chart.update("# no chart here\n", RESULTS)


def test_the_chart_follows_the_numbers() -> None:
    faster = json.loads(json.dumps(RESULTS))
    for row in faster["levels"]:
        row["submit_p50_ms"] = row["submit_p50_ms"] / 2
    assert chart.render(faster) != chart.render(RESULTS)
    assert f"{faster['levels'][2]['submit_p50_ms']:.1f}" in chart.render(faster)
    top = int(chart.render(RESULTS).split('"milliseconds" 0 --> ')[1].split()[0])
    assert top >= max(row["submit_p99_ms"] for row in RESULTS["levels"])
