"""The /v1 contract: envelope, auth, validation, idempotency, conflicts, listing, logs, artifact."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from shared.services import use_services
from tests.conftest import ALICE_KEY, API_KEY, READ_KEY, submission
from tests.scripted_backend import ScriptedBackend

JOB_ROUTES = [
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/logs"),
    ("GET", "/v1/jobs/{id}/artifact"),
    ("GET", "/v1/jobs/{id}/diagnostics"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("DELETE", "/v1/jobs/{id}/preview"),
]
ALL_V1 = [("POST", "/v1/jobs"), ("GET", "/v1/jobs"), *JOB_ROUTES]
WRITE_ROUTES = {
    ("POST", "/v1/jobs"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("DELETE", "/v1/jobs/{id}/preview"),
}


@pytest.fixture
def scripted(services) -> ScriptedBackend:
    backend = ScriptedBackend()
    services.backend = backend
    return backend


def assert_error(status: int, body: object, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict)
    assert body["schema_version"] == 1 and body["error"] == code and body["message"]


def assert_call_error(result: tuple, expected_status: int, code: str) -> None:
    assert_error(result[0], result[1], expected_status, code)


def submit(api, **overrides):
    return api.call("POST", "/v1/jobs", body=submission(**overrides))


def test_healthz_needs_no_key(api) -> None:
    status, body, _ = api.call("GET", "/v1/healthz", key=None)
    assert status == 200 and body["status"] == "ok" and body["queue_depth"] == 0


def test_openapi_describes_every_route(api) -> None:
    status, doc, _ = api.call("GET", "/v1/openapi.json", key=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    for method, path in ALL_V1:
        assert method.lower() in doc["paths"][path.replace("{id}", "{job_id}")]


@pytest.mark.parametrize(("method", "path"), ALL_V1)
def test_auth_matrix(api, services, method: str, path: str) -> None:
    status, accepted, _ = submit(api, owner="bob", org_slug="beta")
    target = path.replace("{id}", accepted["job_id"])
    body = submission("x") if path == "/v1/jobs" and method == "POST" else None
    for key in (None, "wrong-key", ""):
        status, reply, headers = api.call(method, target, body=body, key=key)
        assert_error(status, reply, 401, "unauthorized")
        assert headers["WWW-Authenticate"].startswith("Bearer")
    if (method, path) in WRITE_ROUTES:
        status, reply, _ = api.call(method, target, body=body, key=READ_KEY)
        assert_error(status, reply, 403, "forbidden")
    if "{id}" in path:  # a key limited to owner alice / org acme cannot even see bob's job
        status, reply, _ = api.call(method, target, key=ALICE_KEY)
        assert_error(status, reply, 404, "not_found")


@pytest.mark.parametrize(("method", "path"), ALL_V1)
def test_no_configured_keys_refuses_every_v1_call(api, services, method, path) -> None:
    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "api_keys": ""}
    )
    use_services(services)
    status, reply, _ = api.call(
        method, path.replace("{id}", "fj_01JXXXXXXXXXXXXXXXXXXXXXXX"), key=""
    )
    assert_error(status, reply, 401, "unauthorized")
    status, reply, _ = api.call(
        method, path.replace("{id}", "fj_01JXXXXXXXXXXXXXXXXXXXXXXX"), key=API_KEY
    )
    assert_error(status, reply, 401, "unauthorized")
    assert api.call("GET", "/v1/healthz", key=None)[0] == 200


def test_restricted_key_may_only_submit_for_its_owner_and_org(api) -> None:
    status, reply, _ = api.call("POST", "/v1/jobs", body=submission(owner="bob"), key=ALICE_KEY)
    assert_error(status, reply, 403, "forbidden")
    status, reply, _ = api.call("POST", "/v1/jobs", body=submission(org_slug="beta"), key=ALICE_KEY)
    assert_error(status, reply, 403, "forbidden")
    status, reply, _ = api.call("POST", "/v1/jobs", body=submission(), key=ALICE_KEY)
    assert status == 202, reply


def test_submit_returns_202_with_location_and_the_contract_body(api, driver) -> None:
    status, body, headers = submit(api)
    assert status == 202
    assert re.fullmatch(r"fj_[0-9A-HJKMNP-TV-Z]{26}", body["job_id"])
    assert body == {
        "schema_version": 1,
        "job_id": body["job_id"],
        "status": "queued",
        "queue_position": 1,
        "created_at": body["created_at"],
        "poll_url": f"/v1/jobs/{body['job_id']}",
    }
    assert body["created_at"].endswith("Z")
    assert headers["Location"] == body["poll_url"]
    assert driver.instances[body["job_id"]].status == "Running"  # orchestration started


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "malformed or incomplete request body: not valid JSON"),
        (b"[]", "malformed or incomplete request body: the body must be a JSON object"),
        (
            b'{"app_name": 1}',
            "malformed or incomplete request body: field 'app_name' has the wrong",
        ),
        (json.dumps({**submission(), "app_name": "Bad_Name"}).encode(), "app_name must be"),
        (json.dumps({**submission(), "spec_md": ""}).encode(), "spec_md must not be empty"),
    ],
)
def test_bad_bodies_get_validation_error_never_500(api, raw: bytes, fragment: str) -> None:
    status, body, _ = api.call("POST", "/v1/jobs", raw=raw)
    assert_error(status, body, 400, "validation_error")
    assert fragment in body["message"]


def test_unknown_body_fields_are_ignored_as_the_original_ignores_them(api, services) -> None:
    status, body, _ = api.call(
        "POST", "/v1/jobs", body={**submission(), "complexity": "L", "extra": {"nested": [1]}}
    )
    assert status == 202, body
    job = services.jobs.get_job(body["job_id"])
    assert (job.app_name, job.owner, job.org_slug) == ("wishful-stickers", "alice", "acme")


def test_oversize_markdown_and_bodies(api, services) -> None:
    limit = services.settings.max_input_bytes
    status, body, _ = submit(api, spec_md="x" * (limit + 1))
    assert_error(status, body, 400, "validation_error")
    assert str(limit) in body["message"]
    status, body, _ = api.call("POST", "/v1/jobs", raw=b" " * (4 * limit + 128 * 1024))
    assert_error(status, body, 413, "payload_too_large")


def test_idempotent_replay_and_conflict(api, driver) -> None:
    _, first, _ = submit(api)
    status, again, _ = submit(api)
    assert status == 202 and again["job_id"] == first["job_id"]
    assert list(driver.instances) == [first["job_id"]]  # no second orchestration
    status, body, _ = submit(api, spec_md="# something else")
    assert_error(status, body, 409, "idempotency_conflict")
    status, body, _ = submit(api, preview_ttl_hours=48)  # TTL is part of the fingerprint
    assert_error(status, body, 409, "idempotency_conflict")
    status, other, _ = api.call(
        "POST", "/v1/jobs", body=submission(owner="bob", app_name="other-app")
    )
    assert status == 202 and other["job_id"] != first["job_id"]


def test_replay_reports_the_current_status(api, driver, scripted) -> None:
    _, first, _ = submit(api)
    driver.run_to_completion(first["job_id"])
    status, again, _ = submit(api)
    assert status == 202 and again["status"] == "ready" and again["queue_position"] is None


def test_app_name_conflict_is_per_org_and_ends_with_the_job(api, driver, scripted) -> None:
    _, first, _ = submit(api)
    status, body, _ = submit(api, idempotency_key="another")
    assert_error(status, body, 409, "app_name_conflict")
    assert submit(api, idempotency_key="k3", org_slug="beta")[0] == 202
    assert submit(api, idempotency_key="k4", org_slug=None)[0] == 202
    api.call("POST", f"/v1/jobs/{first['job_id']}/cancel")
    driver.run_to_completion(first["job_id"])
    status, body, _ = submit(api, idempotency_key="another")
    assert status == 202, body


def test_queue_full_gives_429_and_releases_the_key(api, services) -> None:
    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "queue_cap": 2}
    )
    assert submit(api, app_name="a1", idempotency_key="1")[0] == 202
    assert submit(api, app_name="a2", idempotency_key="2")[0] == 202
    status, body, headers = submit(api, app_name="a3", idempotency_key="3")
    assert_error(status, body, 429, "queue_full")
    assert headers["Retry-After"] == "60"
    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "queue_cap": 3}
    )
    assert submit(api, app_name="a3", idempotency_key="3")[0] == 202  # key and name were freed


def test_get_and_list_jobs(api, services) -> None:
    ids = [
        submit(
            api,
            app_name=f"app-{i}",
            idempotency_key=str(i),
            owner="alice" if i % 2 else "bob",
            org_slug="acme",
        )[1]["job_id"]
        for i in range(5)
    ]
    status, view, headers = api.call("GET", f"/v1/jobs/{ids[0]}")
    assert status == 200 and headers["Retry-After"] == "5"
    for field in (
        "job_id",
        "app_name",
        "org_slug",
        "owner",
        "status",
        "phase",
        "percent",
        "stage_label",
        "preview_url",
        "preview_expires_at",
        "expires_at",
        "queue_position",
        "cost_usd",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "quality",
        "detail",
    ):
        assert field in view
    assert view["quality"] == {"audit": "pending", "findings": {"high": 0, "medium": 0, "low": 0}}
    assert_call_error(api.call("GET", "/v1/jobs/fj_01JNOPENOPENOPENOPENOPENOP"), 404, "not_found")
    assert_call_error(api.call("GET", "/v1/jobs/not-an-id"), 404, "not_found")
    pages, cursor = [], None
    while True:
        query = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = api.call("GET", query)
        assert status == 200 and len(page["jobs"]) <= 2
        pages.extend(j["job_id"] for j in page["jobs"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == list(reversed(ids))
    _, alice_view, _ = api.call("GET", "/v1/jobs?limit=100", key=ALICE_KEY)
    assert {j["owner"] for j in alice_view["jobs"]} == {"alice"}
    _, queued, _ = api.call("GET", "/v1/jobs?status=queued&owner=bob")
    assert len(queued["jobs"]) == 3
    for bad in ("status=bogus", "limit=0", "limit=101", "limit=x", "cursor=%21%21"):
        assert_call_error(api.call("GET", f"/v1/jobs?{bad}"), 400, "validation_error")
    assert_call_error(api.call("GET", "/v1/jobs?owner=bob", key=ALICE_KEY), 403, "forbidden")


def test_logs_text_filters_and_cursor_mode(api, driver, scripted) -> None:
    _, accepted, _ = submit(api)
    job_id = accepted["job_id"]
    status, text, _ = api.call("GET", f"/v1/jobs/{job_id}/logs")
    assert status == 200 and text == ""
    driver.run_to_completion(job_id)
    _, text, _ = api.call("GET", f"/v1/jobs/{job_id}/logs")
    assert len(text.splitlines()) == 4 and not text.endswith("\n")
    _, tail, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?tail=1")
    assert json.loads(tail)["schema_version"] == 3
    _, staged, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?stage=implement")
    assert json.loads(staged)["event"] == "stage_started"
    status, page, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?cursor=0")
    assert status == 200 and len(page["events"]) == 4 and page["complete"] is True
    status, rest, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?cursor={page['next_cursor']}")
    assert rest["events"] == [] and rest["next_cursor"] == page["next_cursor"]
    for bad in ("tail=-1", "tail=x", "cursor=-3", "cursor=abc"):
        status, body, _ = api.call("GET", f"/v1/jobs/{job_id}/logs?{bad}")
        assert_error(status, body, 400, "validation_error")


def test_artifact_redirects_to_a_short_lived_read_only_url(api, driver, scripted) -> None:
    _, accepted, _ = submit(api)
    job_id = accepted["job_id"]
    status, body, _ = api.call("GET", f"/v1/jobs/{job_id}/artifact")
    assert_error(status, body, 404, "not_found")
    assert body["message"] == "artifact not found"
    driver.run_to_completion(job_id)
    status, _, headers = api.call("GET", f"/v1/jobs/{job_id}/artifact")
    assert status == 302
    location = headers["Location"]
    assert "sp=r&" in location and "se=" in location
    with urllib.request.urlopen(location, timeout=5) as resp:
        assert resp.read() == b"\x1f\x8bfake-tarball"


def test_diagnostics_redirects_like_the_artifact_once_the_archive_exists(
    api, services, driver, scripted
) -> None:
    _, accepted, _ = submit(api)
    job_id = accepted["job_id"]
    status, body, _ = api.call("GET", f"/v1/jobs/{job_id}/diagnostics")
    assert_error(status, body, 404, "not_found")
    assert body["message"] == "artifact not found"  # the original's words for both archives
    driver.run_to_completion(job_id)
    assert api.call("GET", f"/v1/jobs/{job_id}/diagnostics")[0] == 404  # none uploaded yet
    # Where the builder's grant lets it upload the archive (the contract's path).
    services.blobs.container.upload_blob(
        f"jobs/{job_id}/diagnostics/diagnostics.tar.gz", b"\x1f\x8bdiagnostics"
    )
    status, _, headers = api.call("GET", f"/v1/jobs/{job_id}/diagnostics")
    assert status == 302 and headers["Cache-Control"] == "no-store"
    location = headers["Location"]
    assert "/diagnostics/diagnostics.tar.gz?" in location
    assert "sp=r&" in location and "se=" in location
    with urllib.request.urlopen(location, timeout=5) as resp:
        assert resp.read() == b"\x1f\x8bdiagnostics"
    status, body, _ = api.call("GET", "/v1/jobs/fj_01JNOPENOPENOPENOPENOPENOP/diagnostics")
    assert_error(status, body, 404, "not_found")
    assert body["message"] == "job not found"


def test_list_returns_up_to_100_newest_jobs_by_default(api, services) -> None:
    services.settings = services.settings.__class__(
        **{**services.settings.__dict__, "queue_cap": 200}
    )
    ids = [
        submit(api, app_name=f"app-{i}", idempotency_key=str(i))[1]["job_id"] for i in range(102)
    ]
    status, page, _ = api.call("GET", "/v1/jobs")
    assert status == 200
    assert [j["job_id"] for j in page["jobs"]] == list(reversed(ids))[:100]
    assert page["next_cursor"]
    _, rest, _ = api.call("GET", f"/v1/jobs?cursor={page['next_cursor']}")
    assert [j["job_id"] for j in rest["jobs"]] == list(reversed(ids))[100:]


def test_unknown_routes_and_methods(api) -> None:
    assert api.call("GET", "/v1/nothing")[0] == 404
    assert api.call("PUT", "/v1/jobs")[0] == 405
    assert_call_error(api.call("GET", "/v1/nothing"), 404, "not_found")
    status, body, headers = api.call("PUT", "/v1/jobs")
    assert_error(status, body, 405, "method_not_allowed")
    assert headers["Allow"] == "GET, POST"
    status, body, headers = api.call("DELETE", "/v1/jobs/fj_01JNOPENOPENOPENOPENOPENOP/logs")
    assert_error(status, body, 405, "method_not_allowed")
    assert headers["Allow"] == "GET"
