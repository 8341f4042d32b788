"""The azure_container_apps backend through the real azure-mgmt / azure-containerregistry SDK
clients, against a fake ARM + ACR + OAuth server on HTTPS loopback; storage is Azurite."""

from __future__ import annotations

import io
import json
import logging
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from shared.backends.azure_aca import (
    IMAGE_MARKER,
    LEGACY_IMAGE_MARKER,
    AzureContainerAppsBackend,
    build_job_name,
    preview_app_name,
    repository_name,
)
from shared.backends.base import StepState
from shared.config.azure import AzureSettings
from shared.errors import ConfigurationError
from shared.services import Services
from shared.storage.clients import blob_service, table_service
from shared.storage.job_blobs import JobBlobs
from shared.storage.step_markers import StepMarkers
from tests.conftest import submission
from tests.fake_azure import FakeAzure, FakeCredential
from tests.storage_meter import StorageMeter

SUB, RG = "00000000-0000-0000-0000-000000000001", "rg-foundry-test"
IDENTITY = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/"
    "userAssignedIdentities/id-foundry-build"
)
APP_API, TASKS_API = "2026-07-01", "2025-03-01-preview"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeAzure]:
    server = FakeAzure(tmp_path)
    yield server
    server.close()


def azure_settings(fake: FakeAzure, **overrides) -> AzureSettings:
    base = {
        "subscription_id": SUB,
        "resource_group": RG,
        "location": "eastus2",
        "storage_account": "devstoreaccount1",
        "acr_name": "crfoundry",
        "aca_environment": "cae-foundry",
        "builder_image": "crfoundry.azurecr.io/builder:1",
        "identity_resource_id": IDENTITY,
        "arm_url": fake.url,
        "acr_login_server": fake.host,
        "ca_bundle": str(fake.cert),
    }
    base.update(overrides)
    return AzureSettings(**base)


@pytest.fixture
def azure(services, fake) -> Iterator[Services]:
    """The test's services, switched to the Azure backend (the fake ARM/ACR on loopback)."""
    local = services.backend
    services.settings = replace(
        services.settings, build_backend="azure_container_apps", preview_domain="knowmler.test"
    )
    services.backend = AzureContainerAppsBackend(
        services.settings,
        azure_settings(fake),
        services.blobs,
        FakeCredential(),
        markers=services.markers,
    )
    yield services
    services.backend.close()
    services.backend = local


def grant_of(fake: FakeAzure, job_id: str) -> dict[str, str]:
    put = fake.calls("PUT", f"/jobs/{build_job_name(job_id)}$")[-1]
    secrets = {s["name"]: s["value"] for s in put.body["properties"]["configuration"]["secrets"]}
    return json.loads(secrets["storage-grant"])


def act_as_builder(fake: FakeAzure, job_id: str, *, report: bool = True) -> None:
    """What the builder in the ACA job does, using only the SAS grant it was given."""
    grant = grant_of(fake, job_id)
    with urllib.request.urlopen(grant["inputs"], timeout=5) as resp:
        assert json.loads(resp.read())["spec_md"].startswith("# ")
    lines = [
        {
            "event_schema_version": 1,
            "event": "counts",
            "tasks_total": 2,
            "tasks_completed": 1,
            "tasks_wip": 0,
        }
    ]
    if report:
        lines.append({"schema_version": 3, "tasks": [], "cost_usd": 0.4})
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    create = urllib.request.Request(  # the runner creates the stream with its first lines
        grant["stream_log"],
        method="PUT",
        headers={"x-ms-blob-type": "AppendBlob", "If-None-Match": "*"},
    )
    urllib.request.urlopen(create, timeout=5).close()
    append = urllib.request.Request(
        grant["stream_log"] + "&comp=appendblock", data=data, method="PUT"
    )
    urllib.request.urlopen(append, timeout=5).close()
    source = io.BytesIO()
    with tarfile.open(fileobj=source, mode="w:gz") as tar:
        page = b"<h1>hi</h1>"
        info = tarfile.TarInfo("index.html")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    upload = urllib.request.Request(
        grant["source_artifact"],
        data=source.getvalue(),
        method="PUT",
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    urllib.request.urlopen(upload, timeout=5).close()
    fake.set_execution_status(build_job_name(job_id), "Succeeded")


def phase(name: str):
    return lambda inst: (inst.custom_status or {}).get("phase") == name


def test_a_job_runs_end_to_end_on_azure(api, driver, azure, fake) -> None:
    status, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    # Build job: create-or-update, then exactly one execution.
    (put,) = fake.calls("PUT", f"/jobs/{build_job_name(job_id)}$")
    assert put.api_version == APP_API
    assert put.headers["authorization"] == "Bearer fake-aad-token"
    props = put.body["properties"]
    assert put.body["tags"]["foundry-job-id"] == job_id
    assert props["configuration"]["triggerType"] == "Manual"
    assert props["configuration"]["replicaRetryLimit"] == 0
    assert props["configuration"]["registries"] == [{"server": fake.host, "identity": IDENTITY}]
    container = props["template"]["containers"][0]
    assert container["resources"] == {"cpu": 2.0, "memory": "4Gi"}
    env = {e["name"]: e for e in container["env"]}
    assert env["ANTHROPIC_AUTH_TOKEN"] == {
        "name": "ANTHROPIC_AUTH_TOKEN",
        "secretRef": "proxy-token",
    }
    assert "ANTHROPIC_API_KEY" not in env
    assert env["FOUNDRY_STORAGE_GRANT"]["secretRef"] == "storage-grant"
    events_url = env["FOUNDRY_BUILD_EVENTS_URL"]["value"]
    assert events_url == f"{azure.settings.api_base_url}/v1/jobs/{job_id}/build-events"
    assert env["ANTHROPIC_BASE_URL"]["value"] == azure.settings.proxy_base_url
    assert azure.settings.api_base_url != azure.settings.proxy_base_url  # two services
    assert len(fake.calls("POST", "/start$")) == 1
    grant = grant_of(fake, job_id)
    assert set(grant) == {
        "inputs",
        "spec_md",  # the two input files of a job submitted before input/inputs.json
        "tasks_md",
        "stream_log",
        "stderr_log",
        "diagnostics",
        "source_artifact",
    }
    assert "sp=r&" in grant["spec_md"] and "sp=r&" in grant["tasks_md"]
    assert all(f"/jobs/{job_id}/" in url for url in grant.values())
    assert "sp=r&" in grant["inputs"] and "sp=racw&" in grant["stream_log"]
    assert "sp=cw&" in grant["source_artifact"] and "sp=rcw&" in grant["diagnostics"]
    # The builder appends to the log; progress moves while the build still runs.
    act_as_builder(fake, job_id)
    fake.set_execution_status(build_job_name(job_id), "Running")
    driver.advance(timedelta(seconds=5))
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert view["status"] == "building" and view["percent"] == 45
    fake.set_execution_status(build_job_name(job_id), "Succeeded")
    inst = driver.run_to_completion(job_id)
    assert inst.output["status"] == "ready", azure.jobs.get_job(job_id).error_message
    # Image: source uploaded to ACR's upload location, no SAS in the run request.
    (run,) = fake.calls("POST", "/scheduleRun$")
    assert run.api_version == TASKS_API
    assert run.body["sourceLocation"].startswith("source/")
    assert "sig=" not in json.dumps(run.body)
    assert run.body["imageNames"] == [f"{repository_name(job_id)}:{job_id.lower()}"]
    uploaded = next(iter(fake.uploads.values()))
    with tarfile.open(fileobj=io.BytesIO(uploaded), mode="r:gz") as tar:
        assert {"index.html", "Dockerfile"} <= set(tar.getnames())
    # Preview: scale to zero, external ingress, probe, pulled with the identity.
    (app,) = fake.calls("PUT", f"/containerApps/{preview_app_name(job_id)}$")
    aprops = app.body["properties"]
    assert aprops["template"]["scale"] == {"minReplicas": 0, "maxReplicas": 1}
    assert aprops["configuration"]["ingress"]["external"] is True
    assert aprops["template"]["containers"][0]["probes"]
    assert aprops["template"]["containers"][0]["image"].startswith(fake.host + "/foundry-preview/")
    assert fake.calls("GET", "^/$")  # warmed once before ready
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert view["preview_url"] == f"https://{fake.host}"
    assert view["cost_usd"] == 0.4
    # Teardown leaves nothing.
    assert api.call("DELETE", f"/v1/jobs/{job_id}/preview")[0] == 204
    assert fake.resources_left() == {"jobs": [], "apps": [], "repositories": [], "running_runs": []}
    assert fake.calls("DELETE", "/acr/v1/" + repository_name(job_id).replace("/", "%2F") + "$")


def test_custom_domain_when_a_certificate_is_configured(azure, fake, api, driver) -> None:
    cert = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.App/"
        "managedEnvironments/cae-foundry/certificates/wildcard-acme"
    )
    azure.backend.az = azure_settings(fake, preview_certificates={"acme": cert})
    status, accepted, _ = api.call("POST", "/v1/jobs", body=submission("shop", org_slug="acme"))
    assert status == 202, accepted
    job_id = accepted["job_id"]
    inst = driver.run_to_completion(job_id, until=phase("build_wait"))
    assert inst.is_running, azure.jobs.get_job(job_id).error_message
    act_as_builder(fake, job_id)
    driver.run_to_completion(job_id)
    (app,) = fake.calls("PUT", "/containerApps/")
    assert app.body["properties"]["configuration"]["ingress"]["customDomains"] == [
        {"name": "shop.acme.knowmler.test", "bindingType": "SniEnabled", "certificateId": cert}
    ]
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert view["preview_url"] == "https://shop.acme.knowmler.test"


def test_retries_never_start_a_second_execution_or_run(azure, fake, api, driver) -> None:
    fake.fail("PUT", r"/jobs/fb-", status=429, headers={"Retry-After": "0"})
    # The execution is created, but the reply is lost: nobody may start a second one.
    fake.fail("POST", r"/start$", status=500, after=True)
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    assert len(fake.executions[build_job_name(job_id)]) == 1
    assert len(fake.calls("PUT", r"/jobs/fb-")) == 2  # the 429 was retried by the SDK
    # Durable runs activities at least once: replaying start/image steps changes nothing.
    from shared.pipeline import steps

    assert steps.start_build(azure, job_id).ok
    assert len(fake.executions[build_job_name(job_id)]) == 1
    act_as_builder(fake, job_id)
    driver.run_to_completion(job_id, until=phase("image_wait"))
    steps.check_build(azure, job_id)  # the step that starts the image build, run again
    steps.check_build(azure, job_id)  # the step that starts the image build, run again
    assert len(fake.calls("POST", "/scheduleRun$")) == 1
    assert driver.run_to_completion(job_id).output["status"] == "ready"


def test_timeouts_are_retried_by_the_sdk_without_duplicates(azure, fake, api, driver) -> None:
    azure.backend.close()
    azure.backend = AzureContainerAppsBackend(
        azure.settings,
        azure_settings(fake, http_timeout_secs=0.5),
        azure.blobs,
        FakeCredential(),
        markers=azure.markers,
    )
    fake.fail("GET", r"/executions$", status=200, delay=1.5, times=2)  # reply arrives too late
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    assert len(fake.executions[build_job_name(job_id)]) == 1
    assert len(fake.calls("GET", r"/executions$")) >= 3  # two timed out, then answered
    act_as_builder(fake, job_id)
    assert driver.run_to_completion(job_id).output["status"] == "ready"


def test_tasks_not_allowed_fails_with_a_clear_code(azure, fake, api, driver) -> None:
    fake.fail("POST", r"/scheduleRun$", status=403, times=10, code="TasksOperationsNotAllowed")
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    act_as_builder(fake, job_id)
    driver.run_to_completion(job_id)
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert view["status"] == "failed"
    assert view["error"]["code"] == "image_build_not_allowed"
    assert fake.resources_left()["jobs"] == []


def test_missing_report_is_build_crashed(azure, fake, api, driver) -> None:
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    act_as_builder(fake, job_id, report=False)
    driver.run_to_completion(job_id)
    _, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert view["error"]["code"] == "build_crashed"
    assert fake.resources_left()["jobs"] == []


@pytest.mark.parametrize("when", ["build_wait", "image_wait", "preview_wait"])
def test_cancel_in_every_phase_leaves_no_azure_resource(azure, fake, api, driver, when) -> None:
    fake.run_outcome = "Running"  # the ACR run stays running until canceled
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    if when != "build_wait":
        act_as_builder(fake, job_id)
        if when == "preview_wait":
            fake.run_outcome = "Succeeded"
            fake.warm_status = 503  # the preview never gets healthy
    driver.run_to_completion(job_id, until=phase(when))
    assert api.call("POST", f"/v1/jobs/{job_id}/cancel")[0] == 200
    driver.run_to_completion(job_id)
    assert fake.resources_left() == {"jobs": [], "apps": [], "repositories": [], "running_runs": []}
    if when == "image_wait":
        assert fake.calls("POST", "/cancel$")


def test_orphan_sweep_deletes_tagged_resources_without_a_live_job(azure, fake, client) -> None:
    from devhost.worker import run_in_worker
    from timers.sweeps import run_maintenance

    orphan = "fj_01JORPHANORPHANORPHANORPHA"
    fake.jobs[build_job_name(orphan)] = {
        "name": build_job_name(orphan),
        "tags": {"foundry-job-id": orphan},
        "properties": {},
    }
    fake.apps["unrelated"] = {"name": "unrelated", "tags": {}, "properties": {}}
    fake.repositories.add(repository_name(orphan))
    report = run_in_worker(run_maintenance(azure, client))
    assert report.orphans_removed == [orphan]
    assert fake.resources_left()["jobs"] == [] and fake.resources_left()["repositories"] == []
    assert "unrelated" in fake.apps


def metered_backend(
    azure: Services, fake: FakeAzure
) -> tuple[AzureContainerAppsBackend, StorageMeter]:
    """A second ACA backend on the same storage, whose blob and table clients report every
    exchange to a meter (at the SDK transport)."""
    meter = StorageMeter()
    settings = azure.settings
    blobs = JobBlobs(
        blob_service(settings, **meter.client_options()), container=settings.storage_container
    )
    markers = StepMarkers(
        table_service(settings, **meter.client_options()), prefix=settings.table_prefix
    )
    backend = AzureContainerAppsBackend(
        settings, azure_settings(fake), blobs, FakeCredential(), markers=markers
    )
    return backend, meter


def test_the_image_run_is_a_table_row_and_the_image_steps_write_no_blob(
    azure, fake, api, driver
) -> None:
    fake.run_outcome = "Running"  # the ACR run stays running until canceled
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    act_as_builder(fake, job_id)  # the source artifact is in place
    job = azure.jobs.get_job(job_id)
    backend, meter = metered_backend(azure, fake)
    try:
        with meter.measure() as start:
            backend.start_image_build(job)
        (run_id,) = fake.runs
        assert azure.markers.get(job_id, IMAGE_MARKER) == {
            "run_id": run_id,
            "image": f"{fake.host}/{repository_name(job_id)}:{job_id.lower()}",
            "kind": "fallback_static",
        }
        # Blobs: the source artifact is read, nothing is written. Table: look, then insert.
        blob_calls = [e.method for e in start.exchanges if e.service == "blob"]
        assert blob_calls and set(blob_calls) == {"GET"}, start.describe()
        table_calls = [(e.method, e.status) for e in start.exchanges if e.service == "table"]
        assert table_calls == [("GET", 404), ("POST", 201)], start.describe()
        # A retried start reads the row and schedules nothing.
        with meter.measure() as again:
            backend.start_image_build(job)
        assert len(fake.calls("POST", "/scheduleRun$")) == 1
        assert [(e.service, e.method, e.status) for e in again.exchanges] == [
            ("table", "GET", 200)
        ], again.describe()
        # Polling and teardown follow the recorded run; teardown cancels it.
        with meter.measure() as follow:
            assert backend.poll_image_build(job_id).state is StepState.RUNNING
            assert "image-run" in backend.teardown(job_id)
        assert fake.calls("GET", f"/runs/{run_id}$")
        assert fake.calls("POST", f"/runs/{run_id}/cancel$")
        assert fake.runs[run_id]["status"] == "Canceled"
        assert follow.by_service("blob") == 0, follow.describe()
    finally:
        backend.close()


def test_a_job_built_on_azure_leaves_no_backend_blob(azure, fake, api, driver) -> None:
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    act_as_builder(fake, job_id)
    assert driver.run_to_completion(job_id).output["status"] == "ready"
    (run_id,) = fake.runs
    assert azure.markers.get(job_id, IMAGE_MARKER)["run_id"] == run_id
    names = [b.name for b in azure.blobs.container.list_blobs(name_starts_with=f"jobs/{job_id}/")]
    assert names, "the job's own blobs (inputs, log, artifact) are listed"
    assert [n for n in names if n.startswith(f"jobs/{job_id}/backend/")] == []


def test_a_second_run_scheduled_in_the_crash_window_keeps_the_first_record(
    azure, fake, api, driver, monkeypatch, caplog
) -> None:
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    act_as_builder(fake, job_id)
    job = azure.jobs.get_job(job_id)
    backend = azure.backend
    registries = backend.tasks.registries
    real_schedule = registries.schedule_run
    interleaved = []

    def another_attempt_first(*args, **kwargs):
        # This attempt found no row; another one schedules and records its run before ours does.
        if not interleaved:
            interleaved.append(True)
            backend.start_image_build(job)
        return real_schedule(*args, **kwargs)

    monkeypatch.setattr(registries, "schedule_run", another_attempt_first)
    with caplog.at_level(logging.WARNING, logger="shared.backends.azure_aca"):
        backend.start_image_build(job)
    assert sorted(fake.runs) == ["ca1", "ca2"]  # the other attempt's run, then ours
    assert azure.markers.get(job_id, IMAGE_MARKER)["run_id"] == "ca1"
    assert f"image build for {job_id} was scheduled twice (crash window)" in caplog.messages


def test_missing_configuration_names_the_variables() -> None:
    with pytest.raises(ConfigurationError) as err:
        AzureSettings.from_env({"FOUNDRY_SERVICE_AZURE_SUBSCRIPTION_ID": SUB})
    message = str(err.value)
    for name in ("RESOURCE_GROUP", "ACR_NAME", "ACA_ENVIRONMENT", "BUILDER_IMAGE"):
        assert f"FOUNDRY_SERVICE_AZURE_{name}" in message
    assert "SUBSCRIPTION_ID" not in message


def test_an_image_build_recorded_before_the_step_marker_table_is_still_followed(
    azure, fake, api, driver
) -> None:
    """A job whose ACR run was recorded in the old blob (before an upgrade) is polled and torn
    down by that record; a new job's start never reads the blob."""
    fake.run_outcome = "Running"
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    driver.run_to_completion(job_id, until=phase("build_wait"))
    act_as_builder(fake, job_id)
    backend, meter = metered_backend(azure, fake)
    try:
        backend.start_image_build(azure.jobs.get_job(job_id))
        (run_id,) = fake.runs
        record = azure.markers.get(job_id, IMAGE_MARKER)
        # As the old code left it: the record in the blob, no row.
        azure.markers.table.delete_entity(job_id, IMAGE_MARKER)
        azure.blobs.container.upload_blob(
            f"jobs/{job_id}/{LEGACY_IMAGE_MARKER}", json.dumps(record).encode()
        )
        assert backend.poll_image_build(job_id).state is StepState.RUNNING
        assert "image-run" in backend.teardown(job_id)
        assert fake.runs[run_id]["status"] == "Canceled"
        # Without either record the poll says so (one table read, one blob read).
        azure.blobs.container.delete_blob(f"jobs/{job_id}/{LEGACY_IMAGE_MARKER}")
        with meter.measure() as missing:
            assert backend.poll_image_build(job_id).state is StepState.MISSING
        assert [(e.service, e.method) for e in missing.exchanges] == [
            ("table", "GET"),
            ("blob", "GET"),
        ], missing.describe()
    finally:
        backend.close()
