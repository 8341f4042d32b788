"""The app as the real Python worker loads it: its own indexing and validation over
``function_app.py`` (see tests/worker_runtime.py), and the metadata the host then receives:
names, routes, methods, auth, durable client bindings, the timer schedule."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests import worker_runtime

METADATA_FILE = worker_runtime.ROOT / ".cache" / "function-metadata.json"
EXPECTED_ROUTES = {
    "submit_job": ("v1/jobs", ["POST"]),
    "list_jobs": ("v1/jobs", ["GET"]),
    "get_job": ("v1/jobs/{job_id}", ["GET"]),
    "get_logs": ("v1/jobs/{job_id}/logs", ["GET"]),
    "get_artifact": ("v1/jobs/{job_id}/artifact", ["GET"]),
    "cancel_job": ("v1/jobs/{job_id}/cancel", ["POST"]),
    "delete_preview": ("v1/jobs/{job_id}/preview", ["DELETE"]),
    "healthz": ("v1/healthz", ["GET"]),
    "openapi": ("v1/openapi.json", ["GET"]),
    "messages": ("v1/messages", ["POST"]),
}
ACTIVITIES = {
    "claim_build_slot",
    "start_build",
    "check_build",
    "stop_build_for_timeout",
    "start_image",
    "check_image",
    "start_preview",
    "check_preview",
    "finalize_ready",
    "fail_job",
    "compensate_cancel",
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = worker_runtime.run_indexing()
    METADATA_FILE.parent.mkdir(parents=True, exist_ok=True)
    METADATA_FILE.write_text(json.dumps(result, indent=2) + "\n")
    worker_runtime.SUMMARY[:] = [
        f"{result['runtime']}: {len(result['functions'])} functions accepted, "
        f"{len(result['rejected'])} rejected; full metadata in {METADATA_FILE}",
        *(f"REJECTED {name}: {error}" for name, error in result["rejected"].items()),
        *(
            f"{f['name']}: {json.dumps(f['raw_bindings'], separators=(',', ':'))}"
            for f in result["functions"]
        ),
    ]
    return result


@pytest.fixture(scope="module")
def functions(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Function name -> its bindings, as the JSON the host receives (``raw_bindings``)."""
    return {f["name"]: f["raw_bindings"] for f in report["functions"]}


def _binding(bindings: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(b for b in bindings if b["type"] == kind)


def test_the_real_worker_accepts_every_function(report) -> None:
    assert report["rejected"] == {}
    assert report["app_error"] is None
    assert [f["name"] for f in report["functions"]] == report["indexed"]
    assert len(report["indexed"]) == len(EXPECTED_ROUTES) + len(ACTIVITIES) + 2
    for function in report["functions"]:
        assert function["script_file"] == "function_app.py"
        assert function["language"] == "python"
        assert function["properties"] == {"worker_indexed": "True"}


def test_the_worker_rejects_what_the_host_would_refuse(tmp_path: Path) -> None:
    """The check can fail: an activity annotated ``dict[str, Any]`` (what ours had) is refused,
    and with it the whole metadata response."""
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            from typing import Any

            import azure.durable_functions as df

            app = df.DFApp()

            @app.activity_trigger(input_name="payload")
            def bad(payload: dict[str, Any]) -> dict[str, Any]:
                return payload

            @app.activity_trigger(input_name="payload")
            def good(payload: dict) -> dict:
                return payload
            """
        )
    )
    report = worker_runtime.run_indexing(tmp_path)
    assert report["indexed"] == ["bad", "good"]
    assert report["rejected"] == {
        "bad": "cannot load the bad function: binding payload has invalid non-type annotation "
        "dict[str, typing.Any]"
    }
    assert report["app_error"] == report["rejected"]["bad"]
    assert report["functions"] == []


def test_every_http_route_is_registered_with_anonymous_host_auth(functions) -> None:
    for name, (route, methods) in EXPECTED_ROUTES.items():
        trigger = _binding(functions[name], "httpTrigger")
        assert trigger["route"] == route, name
        assert trigger["methods"] == methods, name
        # The service does its own bearer auth; host function keys would break the contract.
        assert trigger["authLevel"] == "ANONYMOUS", name
        assert _binding(functions[name], "http")["direction"] == "OUT", name


def test_routes_that_start_or_signal_orchestrations_get_a_durable_client(functions) -> None:
    for name in ("submit_job", "cancel_job", "maintenance"):
        assert any(b["type"] == "durableClient" for b in functions[name]), name


def test_orchestrator_activities_and_timer_are_registered(functions) -> None:
    kinds = {name: {b["type"] for b in bindings} for name, bindings in functions.items()}
    assert kinds["run_job"] == {"orchestrationTrigger"}
    assert {n for n, k in kinds.items() if "activityTrigger" in k} == ACTIVITIES
    for name in ACTIVITIES:
        assert _binding(functions[name], "activityTrigger")["activity"] == name
    timer = _binding(functions["maintenance"], "timerTrigger")
    assert timer["schedule"] == "%FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE%"


def test_function_names_are_unique(report) -> None:
    names = [f["name"] for f in report["functions"]]
    assert len(names) == len(set(names)) == len(EXPECTED_ROUTES) + len(ACTIVITIES) + 2
    ids = [f["function_id"] for f in report["functions"]]
    assert len(ids) == len(set(ids))
