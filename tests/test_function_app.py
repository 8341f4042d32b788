"""The app indexes the way the worker's indexer will see it: names, routes, methods, auth."""

from __future__ import annotations

import json

import function_app
from devhost.indexing import binding_types, indexed_functions

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
    "build_event": ("v1/jobs/{job_id}/build-events", ["POST"]),
}
ACTIVITIES = {
    "start_build",
    "check_build",
    "stop_build_for_timeout",
    "check_image",
    "check_preview",
    "finalize_ready",
    "fail_job",
    "compensate_cancel",
}


def _functions() -> dict[str, dict]:
    return {
        f.get_function_name(): json.loads(f.get_function_json())
        for f in indexed_functions(function_app.app)
    }


def test_every_http_route_is_registered_with_anonymous_host_auth() -> None:
    functions = _functions()
    for name, (route, methods) in EXPECTED_ROUTES.items():
        trigger = next(b for b in functions[name]["bindings"] if b["type"] == "httpTrigger")
        assert trigger["route"] == route, name
        assert trigger["methods"] == methods, name
        # The service does its own bearer auth; host function keys would break the contract.
        assert trigger["authLevel"] == "ANONYMOUS", name


def test_routes_that_start_or_signal_orchestrations_get_a_durable_client() -> None:
    functions = _functions()
    for name in ("submit_job", "cancel_job", "maintenance"):
        assert any(b["type"] == "durableClient" for b in functions[name]["bindings"]), name


def test_orchestrator_activities_and_timer_are_registered() -> None:
    kinds = {f.get_function_name(): binding_types(f) for f in indexed_functions(function_app.app)}
    assert kinds["run_job"] == {"orchestrationTrigger"}
    assert {n for n, k in kinds.items() if "activityTrigger" in k} == ACTIVITIES
    timer = next(b for b in _functions()["maintenance"]["bindings"] if b["type"] == "timerTrigger")
    assert timer["schedule"] == "%FOUNDRY_SERVICE_MAINTENANCE_SCHEDULE%"


def test_function_names_are_unique() -> None:
    names = [f.get_function_name() for f in indexed_functions(function_app.app)]
    assert len(names) == len(set(names)) == len(EXPECTED_ROUTES) + len(ACTIVITIES) + 2
