"""Property tests of the API against its own OpenAPI document: whatever the body, query or path,
the service answers with a documented status and a body matching the documented schema, never
a 5xx, and what it accepts is stored exactly as sent."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from api.service import openapi_document
from tests.conftest import submission

DOC = openapi_document()
REGISTRY = Registry().with_resource(
    "urn:openapi",
    Resource.from_contents({**DOC, "$schema": "https://json-schema.org/draft/2020-12/schema"}),
)
FIELDS = [
    "app_name",
    "org_slug",
    "spec_md",
    "tasks_md",
    "owner",
    "idempotency_key",
    "preview_ttl_hours",
]
SLUGGY = st.text(alphabet=string.ascii_lowercase + string.digits + "-_A.", min_size=0, max_size=70)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_against_doc(path: str, method: str, status: int, body: Any) -> None:
    operation = DOC["paths"][path][method]
    assert str(status) in operation["responses"], (path, method, status, body)
    assert status < 500, body
    content = operation["responses"][str(status)].get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is not None and isinstance(body, dict | list):
        ref = schema.get("$ref", "")
        target = {"$ref": "urn:openapi" + ref.replace("#", "#", 1)} if ref else schema
        Draft202012Validator(target, registry=REGISTRY).validate(body)


@st.composite
def submit_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = dict(submission(draw(SLUGGY) or "x", idempotency_key=draw(st.text(max_size=8))))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            body.pop(field, None)
        elif choice == 1:
            body[field] = draw(JSONISH)
        elif choice == 2:
            body[field] = draw(SLUGGY)
        else:
            body[field] = draw(st.integers(-100, 500))
    if draw(st.booleans()):
        body[draw(st.text(min_size=1, max_size=6))] = draw(JSONISH)
    return body


@FAST
@given(body=submit_bodies())
def test_submit_never_fails_and_stores_exactly_what_it_accepted(api, services, body) -> None:
    status, reply, _ = api.call("POST", "/v1/jobs", body=body)
    check_against_doc("/v1/jobs", "post", status, reply)
    if status == 202:
        job = services.jobs.get_job(reply["job_id"])
        assert (job.app_name, job.owner, job.org_slug) == (
            body["app_name"],
            body["owner"],
            body.get("org_slug"),
        )
        stored = services.blobs.read_inputs(job.job_id)
        assert stored == (body["spec_md"], body["tasks_md"])
        ttl = body.get("preview_ttl_hours")
        assert job.ttl_hours == (24 if ttl is None else max(1, min(72, ttl)))


@FAST
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_clean_400(api, raw: bytes) -> None:
    status, reply, _ = api.call("POST", "/v1/jobs", raw=raw)
    check_against_doc("/v1/jobs", "post", status, reply)
    assert status == 400


@FAST
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "owner", "limit", "cursor", "x"]),
        st.text(alphabet=string.printable, max_size=12),
        max_size=4,
    )
)
def test_listing_with_arbitrary_query_parameters(api, params: dict[str, str]) -> None:
    from urllib.parse import urlencode

    status, reply, _ = api.call("GET", "/v1/jobs?" + urlencode(params))
    check_against_doc("/v1/jobs", "get", status, reply)


@FAST
@given(
    job_id=st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=40),
    route=st.sampled_from(
        [
            ("get", ""),
            ("get", "/logs"),
            ("get", "/artifact"),
            ("get", "/diagnostics"),
            ("post", "/cancel"),
            ("delete", "/preview"),
        ]
    ),
    query=st.sampled_from(["", "?tail=3", "?tail=-1", "?cursor=0", "?cursor=x", "?stage=a"]),
)
def test_job_routes_with_arbitrary_ids(
    api, job_id: str, route: tuple[str, str], query: str
) -> None:
    method, suffix = route
    status, reply, _ = api.call(method.upper(), f"/v1/jobs/{job_id}{suffix}{query}")
    check_against_doc("/v1/jobs/{job_id}" + suffix, method, status, reply)
    assert status in (400, 404)


def test_the_document_itself_is_valid_json_schema() -> None:
    for schema in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    assert json.dumps(DOC)


def test_the_response_check_rejects_an_undocumented_body() -> None:
    from jsonschema import ValidationError

    with pytest.raises(ValidationError):
        check_against_doc("/v1/jobs", "post", 202, {"schema_version": 1, "job_id": 5})
    with pytest.raises(AssertionError):
        check_against_doc("/v1/jobs", "post", 418, {})


@pytest.mark.parametrize("status_filter", ["queued", "ready"])
def test_documented_list_shape(api, status_filter: str) -> None:
    api.call("POST", "/v1/jobs", body=submission())
    status, reply, _ = api.call("GET", f"/v1/jobs?status={status_filter}")
    check_against_doc("/v1/jobs", "get", status, reply)
