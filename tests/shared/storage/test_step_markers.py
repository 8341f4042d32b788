"""Step markers: create-once rows (conditional inserts) against Azurite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shared.storage.clients import table_service
from shared.storage.step_markers import StepMarkers


def test_a_marker_is_recorded_once_and_the_first_one_is_kept(services) -> None:
    markers = services.markers
    first = {"run_id": "ca1", "image": "cr.example/foundry-preview/fj-a:fj_a", "kind": "static"}
    assert markers.get("fj_A", "image_run") is None
    assert markers.record_once("fj_A", "image_run", first) is True
    assert markers.record_once("fj_A", "image_run", {**first, "run_id": "ca2"}) is False
    assert markers.get("fj_A", "image_run") == first
    # Keyed by job and name: neither another job nor another name of the same job collides.
    assert markers.get("fj_B", "image_run") is None
    assert markers.record_once("fj_B", "image_run", {"run_id": "ca3"}) is True
    assert markers.record_once("fj_A", "other_step", {"n": 1}) is True
    assert markers.get("fj_A", "image_run") == first
    (row,) = markers.table.query_entities(
        "PartitionKey eq @pk and RowKey eq @rk", parameters={"pk": "fj_A", "rk": "image_run"}
    )
    assert set(row) == {"PartitionKey", "RowKey", "value"}


def test_concurrent_records_have_exactly_one_winner(services) -> None:
    # Separate clients, as separate activity executions on separate workers would have.
    stores = [
        StepMarkers(table_service(services.settings), prefix=services.settings.table_prefix)
        for _ in range(6)
    ]
    with ThreadPoolExecutor(len(stores)) as pool:
        won = list(
            pool.map(
                lambda i: stores[i].record_once("fj_C", "image_run", {"run_id": f"ca{i}"}),
                range(len(stores)),
            )
        )
    assert won.count(True) == 1
    winner = won.index(True)
    assert services.markers.get("fj_C", "image_run") == {"run_id": f"ca{winner}"}
