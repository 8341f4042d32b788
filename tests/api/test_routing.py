"""The catch-all's route table is the app's own, and matches paths the way the host does."""

from __future__ import annotations

import json

import pytest

import function_app
from api.routing import (
    CATCH_ALL_FUNCTION,
    CATCH_ALL_ROUTE,
    ROUTES,
    allowed_methods,
    template_pattern,
    url_bytes,
)
from devhost.indexing import indexed_functions


def test_the_route_table_is_exactly_what_the_functions_declare() -> None:
    declared: dict[str, set[str]] = {}
    for function in indexed_functions(function_app.app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"] != "httpTrigger":
                continue
            if function.get_function_name() == CATCH_ALL_FUNCTION:
                assert binding["route"] == CATCH_ALL_ROUTE
                continue
            declared.setdefault(binding["route"], set()).update(binding["methods"])
    assert {route: frozenset(methods) for route, methods in declared.items()} == ROUTES


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/jobs", {"GET", "POST"}),
        ("/v1/jobs/", {"GET", "POST"}),
        ("/V1/JOBS", {"GET", "POST"}),
        ("/v1/jobs/anything", {"GET"}),
        ("/v1/jobs/a/logs", {"GET"}),
        ("/v1/jobs/a/diagnostics", {"GET"}),
        ("/v1/jobs/a/cancel", {"POST"}),
        ("/v1/jobs/a/preview", {"DELETE"}),
        ("/v1/messages", set()),  # the LLM proxy is its own service (docs/llm-proxy.md)
        ("/v1/jobs/a/b", set()),
        ("/v1/jobs//logs", set()),
        ("/v1", set()),
        ("/", set()),
        ("/admin/host/status", set()),
    ],
)
def test_allowed_methods(path: str, methods: set[str]) -> None:
    assert allowed_methods(path) == methods


def test_templates() -> None:
    assert template_pattern("{*path}").fullmatch("/a/b/c")["path"] == "a/b/c"
    assert template_pattern("{*path}").fullmatch("/")["path"] == ""
    found = template_pattern("v1/jobs/{job_id:minlength(3)}").fullmatch("/v1/jobs/abc")
    assert found["job_id"] == "abc"
    assert template_pattern("v1/jobs/{job_id}").fullmatch("/v1/jobs/a/b") is None


def test_url_bytes_counts_path_and_query_as_sent() -> None:
    assert url_bytes("http://h/v1/jobs") == len("/v1/jobs")
    assert url_bytes("http://h/v1/jobs?limit=5") == len("/v1/jobs?limit=5")
    assert url_bytes("https://h:1/a%20b?x=%C3%A9") == len("/a%20b?x=%C3%A9")
