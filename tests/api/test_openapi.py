"""/v1/openapi.json is generated from the models, valid OpenAPI 3.1, and complete: every route,
every error code the code can send (collected from the code itself), /v1/messages with examples."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from api import schemas
from api.edge import STATUS_OF
from api.http import ERROR_CODES, ErrorCode
from api.openapi import MODELS, PROXY_ERROR_STATUS, build_document, openapi_document
from api.routing import ROUTES
from shared import errors
from shared.domain.validation import SubmitRequest

ROOT = Path(__file__).resolve().parents[2]
DOC = openapi_document()


def test_the_served_document_is_valid_openapi_3_1(api) -> None:
    status, served, headers = api.call("GET", "/v1/openapi.json", key=None)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    validate(served)
    assert served["openapi"] == "3.1.0"


def test_the_validator_rejects_a_broken_document() -> None:
    """Guard against a validation step that cannot fail."""
    broken = build_document()
    broken["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"] = {
        "application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}
    }
    del broken["info"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_the_served_document_is_regenerated_from_the_models(api) -> None:
    """Served == built now from the models; components == each model's own JSON schema."""
    _, served, _ = api.call("GET", "/v1/openapi.json", key=None)
    assert served == json.loads(json.dumps(build_document()))
    components = served["components"]["schemas"]
    for model, mode in MODELS:
        own = model.model_json_schema(mode=mode, ref_template="#/components/schemas/{model}")
        own.pop("$defs", None)
        assert components[model.__name__] == own, model.__name__


def test_slug_and_length_rules_come_from_the_model() -> None:
    request = DOC["components"]["schemas"]["SubmitRequest"]
    app_name = request["properties"]["app_name"]
    assert app_name["pattern"] == r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
    assert (app_name["minLength"], app_name["maxLength"]) == (1, 63)
    assert request["properties"]["owner"]["maxLength"] == 256
    assert request["properties"]["idempotency_key"]["maxLength"] == 255
    ttl = request["properties"]["preview_ttl_hours"]["anyOf"][0]
    assert (ttl["minimum"], ttl["maximum"]) == (-(2**31), 2**31 - 1)
    assert "additionalProperties" not in request  # unknown fields are ignored, not refused
    assert set(request["required"]) == {
        "app_name",
        "spec_md",
        "tasks_md",
        "owner",
        "idempotency_key",
    }


def test_every_route_and_method_is_documented_and_nothing_else() -> None:
    """This app's routes, plus /v1/messages, which the document marks as served by the LLM
    proxy (its own service, docs/llm-proxy.md)."""
    documented = {
        path.lstrip("/"): frozenset(method.upper() for method in operations)
        for path, operations in DOC["paths"].items()
    }
    elsewhere = {"v1/messages": frozenset({"POST"})}
    assert documented == ROUTES | elsewhere
    served_by = DOC["paths"]["/v1/messages"]["post"]["servers"][0]
    assert served_by["variables"]["proxy"]["description"] == "FOUNDRY_SERVICE_BUILDER_PROXY_URL"
    assert all(
        "servers" not in op
        for p, ops in DOC["paths"].items()
        if p != "/v1/messages"
        for op in ops.values()
    )


def test_the_query_parameters_come_from_the_query_models() -> None:
    listing = {p["name"]: p for p in DOC["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert set(listing) == set(schemas.ListJobsQuery.model_fields)
    assert listing["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 100,
    }
    logs = {p["name"]: p for p in DOC["paths"]["/v1/jobs/{job_id}/logs"]["get"]["parameters"]}
    assert set(logs) == {"job_id", *schemas.LogsQuery.model_fields}
    assert logs["tail"]["schema"]["type"] == "integer" and logs["tail"]["schema"]["minimum"] == 0


def _literal_calls(path: Path, names: set[str]) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in names
    ]


def test_every_error_the_code_sends_is_enumerated_with_its_status() -> None:
    """Collected from the code: every ApiError/error_response site in api/ and devhost/, the
    edge's STATUS_OF table, and the code of every domain refusal."""
    sent: set[tuple[int, str]] = set()
    for folder in ("api", "devhost"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for call in _literal_calls(path, {"ApiError", "error_response"}):
                status_node, code_node = call.args[0], call.args[1]
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                assert not isinstance(code_node, ast.Constant), f"{where}: use an ErrorCode"
                if not (
                    isinstance(code_node, ast.Attribute)
                    and isinstance(code_node.value, ast.Name)
                    and code_node.value.id == "ErrorCode"
                ):
                    continue  # forwarding a variable (typed ErrorCode: mypy checks those)
                member = ErrorCode[code_node.attr]
                if isinstance(status_node, ast.Constant):
                    sent.add((int(status_node.value), member.value))
                    assert ERROR_CODES[member][0] == status_node.value, where
    for code_name, refusal_status in STATUS_OF.items():
        sent.add((refusal_status, code_name))
        assert ERROR_CODES[ErrorCode(code_name)][0] == refusal_status, code_name
    refusals = [c for c in vars(errors).values() if isinstance(c, type)]
    for refusal in refusals:
        if issubclass(refusal, errors.Refused):
            assert refusal.code in STATUS_OF, refusal
    assert len(sent) >= 12  # the scan found the sites (a scan that finds nothing cannot fail)
    documented = DOC["components"]["schemas"]["ErrorCode"]
    assert set(documented["enum"]) == {code.value for code in ErrorCode}
    assert {code for _, code in sent} <= set(documented["enum"])
    for name in ("misconfigured", "unavailable", "queue_full", "uri_too_long"):
        assert f"`{name}`" in documented["description"]


def test_every_documented_status_of_a_code_appears_on_some_operation() -> None:
    statuses = {
        int(status)
        for operations in DOC["paths"].values()
        for operation in operations.values()
        for status in operation["responses"]
        if status.isdigit()
    }
    missing = {
        code.value
        for code, (status, _) in ERROR_CODES.items()
        if status not in statuses and status not in (404, 405, 500)
    }
    assert missing == set()


def test_the_proxy_refusal_codes_are_the_ones_the_proxy_sends() -> None:
    found: dict[str, int] = {}
    for call in _literal_calls(ROOT / "shared" / "llm_proxy.py", {"_deny"}):
        status_node, code_node = call.args[0], call.args[1]
        assert isinstance(status_node, ast.Constant), call.lineno
        assert isinstance(code_node, ast.Constant), call.lineno
        found[str(code_node.value)] = int(status_node.value)
    assert found == {code.value: status for code, status in PROXY_ERROR_STATUS.items()}
    assert set(found) == {code.value for code in schemas.ProxyErrorCode}


def test_v1_messages_is_documented_with_examples() -> None:
    operation = DOC["paths"]["/v1/messages"]["post"]
    assert operation["security"] == [{"proxyToken": []}]
    request = DOC["components"]["schemas"]["MessagesRequest"]
    assert request["examples"][0]["model"].startswith("claude-")
    assert request.get("additionalProperties", True) is not False  # other fields pass through
    for status in ("400", "401", "403", "413", "429", "502", "503"):
        media = operation["responses"][status]["content"]["application/json"]
        assert media["schema"] == {"$ref": "#/components/schemas/ProxyError"}
        assert media["example"]["type"] == "error", status
    assert "example" in operation["responses"]["200"]["content"]["application/json"]


def test_the_examples_are_valid_requests() -> None:
    example = DOC["components"]["schemas"]["SubmitRequest"]["examples"][0]
    assert SubmitRequest.model_validate(example).app_name == example["app_name"]
    messages = DOC["components"]["schemas"]["MessagesRequest"]["examples"][0]
    assert schemas.MessagesRequest.model_validate(messages).max_tokens == messages["max_tokens"]


def test_the_build_notice_schema_is_the_routes_own() -> None:
    from typing import get_args

    from api.build_events import EVENTS, MAX_NOTICE_BYTES

    assert get_args(schemas.BuildNotice.model_fields["event"].annotation) == EVENTS
    operation = DOC["paths"]["/v1/jobs/{job_id}/build-events"]["post"]
    assert operation["security"] == [{"proxyToken": []}]
    assert {"202", "400", "401", "413"} <= set(operation["responses"])
    assert MAX_NOTICE_BYTES == 4096
