"""The ``azure_container_apps`` backend: the build runs as an ACA Job, the image is built by ACR
Tasks, the preview is a scale-to-zero Container App. All calls go through the azure-mgmt SDKs and
azure-containerregistry with a managed-identity credential; nothing here waits for long.

Idempotency: resource names derive from the job id (``fb-<job>``, ``fp-<job>``,
``foundry-preview/<job>``), PUTs are create-or-update, a build execution is started only when
none exists, and the ACR run of the image build is recorded in a create-once row of the
``<prefix>stepmarkers`` table (:mod:`shared.storage.step_markers`): a retried start finds it and
schedules no second run, and polling and teardown follow the run it names.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from azure.core.credentials import TokenCredential
from azure.core.polling import LROPoller
from azure.mgmt.appcontainers import models as aca_models

from shared.backends.base import ResourceRef, StepState, StepStatus
from shared.backends.build_context import BuildContextError, prepare_build_context
from shared.config.azure import AzureSettings
from shared.config.settings import Settings
from shared.domain.ids import azure_name
from shared.domain.models import JobRecord
from shared.errors import (
    NotFound,
    TerminalBackendError,
    TransientBackendError,
    translate_azure_errors,
)
from shared.identity import service_credential
from shared.storage.job_blobs import ARTIFACT_PATH, JobBlobs, builder_grant
from shared.storage.step_markers import StepMarkers

log = logging.getLogger(__name__)
JOB_TAG = "foundry-job-id"
REPO_PREFIX = "foundry-preview/"
#: The step marker (shared.storage.step_markers) naming the ACR run of a job's image build.
IMAGE_MARKER = "image_run"
#: Where the ACR run was recorded before the step-marker table (a blob under ``jobs/<id>/``).
LEGACY_IMAGE_MARKER = "backend/image-run.json"
_RUNNING_EXECUTION = {"Running", "Processing", "Unknown"}
_FAILED_EXECUTION = {"Failed", "Stopped", "Degraded"}
_RUNNING_RUN = {"Queued", "Started", "Running"}


def build_events_url(settings: Settings, job_id: str) -> str:
    """Where the build runner posts its notices (api/build_events.py): this service, which is
    not where the LLM proxy is (that is its own Container App, docs/llm-proxy.md)."""
    return f"{settings.api_base_url.rstrip('/')}/v1/jobs/{job_id}/build-events"


def build_job_name(job_id: str) -> str:
    return azure_name("fb", job_id)


def preview_app_name(job_id: str) -> str:
    return azure_name("fp", job_id)


def repository_name(job_id: str) -> str:
    return REPO_PREFIX + job_id.lower().replace("_", "-")


def job_id_from_repository(repo: str) -> str | None:
    slug = repo.removeprefix(REPO_PREFIX)
    if repo == slug or not slug.startswith("fj-"):
        return None
    return "fj_" + slug[3:].upper()


def preview_hostname(app_name: str, org_slug: str | None, domain: str) -> str:
    return ".".join(part for part in (app_name, org_slug, domain) if part)


class AzureContainerAppsBackend:
    name = "azure_container_apps"
    writes_stream_to_blob = True
    notifies_build_end = True
    #: ARM reads are throttled per subscription and principal: one ask per job every 2 s.
    poll_interval_secs = 2.0

    def __init__(
        self,
        settings: Settings,
        az: AzureSettings,
        blobs: JobBlobs,
        credential: TokenCredential,
        *,
        markers: StepMarkers,
    ) -> None:
        from azure.mgmt.appcontainers import ContainerAppsAPIClient
        from azure.mgmt.containerregistrytasks import ContainerRegistryTasksMgmtClient

        self.settings, self.az, self.blobs, self.credential = settings, az, blobs, credential
        self.markers = markers
        common: dict[str, Any] = {"base_url": az.arm_url, "read_timeout": az.http_timeout_secs}
        if az.ca_bundle:
            common["connection_verify"] = az.ca_bundle
        self.aca = ContainerAppsAPIClient(credential, az.subscription_id, **common)
        self.tasks = ContainerRegistryTasksMgmtClient(credential, az.subscription_id, **common)
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=az.ca_bundle) if az.ca_bundle else True
        )
        self.http = httpx.Client(timeout=az.http_timeout_secs, verify=verify)

    @classmethod
    def from_env(
        cls, settings: Settings, blobs: JobBlobs, markers: StepMarkers
    ) -> AzureContainerAppsBackend:
        return cls(settings, AzureSettings.from_env(), blobs, service_credential(), markers=markers)

    def close(self) -> None:
        self.aca.close()
        self.tasks.close()
        self.http.close()

    def _registry(self) -> Any:
        from azure.containerregistry import ContainerRegistryClient

        kwargs: dict[str, Any] = {
            "audience": "https://management.azure.com",
            "read_timeout": self.az.http_timeout_secs,
        }
        if self.az.ca_bundle:
            kwargs["connection_verify"] = self.az.ca_bundle
        return ContainerRegistryClient(
            f"https://{self.az.registry_server}", self.credential, **kwargs
        )

    def _tags(self, job_id: str) -> dict[str, str]:
        return {JOB_TAG: job_id, "foundry-managed": "true"}

    def _envelope(self, job_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        """What every resource the service creates has: region, job tags, the build identity."""
        return {
            "location": self.az.location,
            "tags": self._tags(job_id),
            "identity": {
                "type": "UserAssigned",
                "userAssignedIdentities": {self.az.identity_resource_id: {}},
            },
            "properties": properties,
        }

    # -- build -------------------------------------------------------------------------------
    def _executions(self, job_id: str) -> list[Any]:
        try:
            with translate_azure_errors("list build executions"):
                return list(
                    self.aca.jobs_executions.list(self.az.resource_group, build_job_name(job_id))
                )
        except NotFound:
            return []

    def build_started(self, job_id: str) -> bool:
        return bool(self._executions(job_id))

    def _grant(self, job_id: str) -> str:
        return builder_grant(self.blobs, job_id, ttl_secs=self.settings.grant_ttl_secs)

    def build_job_envelope(self, job: JobRecord, *, proxy_token: str, grant: str) -> dict[str, Any]:
        registry = {"server": self.az.registry_server, "identity": self.az.identity_resource_id}
        return self._envelope(
            job.job_id,
            {
                "environmentId": self.az.environment_id,
                "configuration": {
                    "triggerType": "Manual",
                    "replicaTimeout": self.settings.build_timeout_secs,
                    "replicaRetryLimit": 0,
                    "manualTriggerConfig": {"parallelism": 1, "replicaCompletionCount": 1},
                    # Secrets, not plain env values: they are not shown in the job definition.
                    "secrets": [
                        {"name": "proxy-token", "value": proxy_token},
                        {"name": "storage-grant", "value": grant},
                    ],
                    "registries": [registry],
                },
                "template": {
                    "containers": [
                        {
                            "name": "builder",
                            "image": self.az.builder_image,
                            "resources": {"cpu": self.az.build_cpu, "memory": self.az.build_memory},
                            "env": [
                                {
                                    "name": "ANTHROPIC_BASE_URL",
                                    "value": self.settings.proxy_base_url,
                                },
                                {"name": "ANTHROPIC_AUTH_TOKEN", "secretRef": "proxy-token"},
                                {"name": "FOUNDRY_JOB_ID", "value": job.job_id},
                                {"name": "FOUNDRY_STORAGE_GRANT", "secretRef": "storage-grant"},
                                {
                                    "name": "FOUNDRY_BUILD_EVENTS_URL",
                                    "value": build_events_url(self.settings, job.job_id),
                                },
                            ],
                        }
                    ]
                },
            },
        )

    def start_build(self, job: JobRecord, *, proxy_token: str) -> None:
        name = build_job_name(job.job_id)
        envelope = self.build_job_envelope(
            job, proxy_token=proxy_token, grant=self._grant(job.job_id)
        )
        with translate_azure_errors("create build job"):
            self.aca.jobs.begin_create_or_update(
                self.az.resource_group, name, aca_models.Job(envelope)
            ).result()
        if self._executions(job.job_id):
            return  # an earlier attempt started it; never start a second execution
        with translate_azure_errors("start build execution"):
            # Starting is not idempotent: no SDK-level retry. If the reply is lost, the activity
            # retry looks for the execution first (above and in shared.pipeline.steps.start_build).
            self.aca.jobs.begin_start(self.az.resource_group, name, retry_total=0).result()

    def poll_build(self, job_id: str) -> StepStatus:
        executions = self._executions(job_id)
        if not executions:
            return StepStatus(StepState.MISSING)
        latest = max(executions, key=lambda e: _started(e))
        status = _execution_status(latest)
        if status in _RUNNING_EXECUTION:
            return StepStatus(StepState.RUNNING)
        if status in _FAILED_EXECUTION:
            return StepStatus(StepState.FAILED, f"build execution {status.lower()}")
        return StepStatus(StepState.SUCCEEDED)

    def read_stream(self, job_id: str, *, offset: int) -> bytes:
        data = self.blobs.read_log(job_id, offset=offset, max_bytes=4 * 1024 * 1024)
        cut = data.rfind(b"\n")
        return data[: cut + 1] if cut >= 0 else b""

    def stop_build(self, job_id: str) -> None:
        for execution in self._executions(job_id):
            if _execution_status(execution) in _RUNNING_EXECUTION:
                try:
                    with translate_azure_errors("stop build execution"):
                        self.aca.jobs.begin_stop_execution(
                            self.az.resource_group, build_job_name(job_id), execution.name
                        ).result()
                except NotFound:
                    continue

    def collect_artifact(self, job_id: str) -> bytes | None:
        return None  # the builder uploads output/source.tar.gz through its grant

    # -- image -------------------------------------------------------------------------------
    def _image_ref(self, job_id: str) -> str:
        return f"{self.az.registry_server}/{repository_name(job_id)}:{job_id.lower()}"

    def _marker(self, job_id: str, *, legacy: bool = False) -> dict[str, Any] | None:
        """The recorded ACR run; with ``legacy``, a job whose image build was recorded before
        the step-marker table (the blob :data:`LEGACY_IMAGE_MARKER`) is found too. Only where a
        missing record is unexpected (poll, teardown), so a new job never pays the blob read."""
        marker = self.markers.get(job_id, IMAGE_MARKER)
        if marker is None and legacy:
            try:
                marker = dict(json.loads(self.blobs.read_bytes(job_id, LEGACY_IMAGE_MARKER)))
            except NotFound:
                return None
        return marker

    def start_image_build(self, job: JobRecord) -> None:
        if self._marker(job.job_id) is not None:
            return
        try:
            source = self.blobs.read_bytes(job.job_id, ARTIFACT_PATH)
        except NotFound as exc:
            raise TerminalBackendError("the build produced no source artifact") from exc
        try:
            context, kind = prepare_build_context(source)
        except BuildContextError as exc:
            raise TerminalBackendError(str(exc)) from exc
        rg, acr = self.az.resource_group, self.az.acr_name
        with translate_azure_errors("get build source upload URL"):
            upload = self.tasks.registries.get_build_source_upload_url(rg, acr)
        response = self.http.put(
            upload["uploadUrl"], content=context, headers={"x-ms-blob-type": "BlockBlob"}
        )
        if response.status_code >= 300:
            raise TransientBackendError(f"upload build context: HTTP {response.status_code}")
        request = {
            "type": "DockerBuildRequest",
            "sourceLocation": upload["relativePath"],  # a relative path: no SAS in the run
            "dockerFilePath": "Dockerfile",
            "imageNames": [self._image_ref(job.job_id).split("/", 1)[1]],
            "isPushEnabled": True,
            "platform": {"os": "Linux"},
            "timeout": self.settings.image_build_timeout_secs,
        }
        with translate_azure_errors("schedule image build"):
            run = self.tasks.registries.schedule_run(rg, acr, request)
        run_id = str(run["properties"]["runId"])
        marker = {"run_id": run_id, "image": self._image_ref(job.job_id), "kind": kind}
        if not self.markers.record_once(job.job_id, IMAGE_MARKER, marker):
            log.warning("image build for %s was scheduled twice (crash window)", job.job_id)

    def poll_image_build(self, job_id: str) -> StepStatus:
        marker = self._marker(job_id, legacy=True)
        if marker is None:
            return StepStatus(StepState.MISSING)
        with translate_azure_errors("read image build run"):
            run = self.tasks.runs.get(self.az.resource_group, self.az.acr_name, marker["run_id"])
        status = str(run["properties"].get("status", "Queued"))
        if status in _RUNNING_RUN:
            return StepStatus(StepState.RUNNING)
        if status == "Succeeded":
            return StepStatus(StepState.SUCCEEDED, facts={"image_ref": marker["image"]})
        return StepStatus(StepState.FAILED, f"image build {status.lower()}")

    # -- preview -----------------------------------------------------------------------------
    def preview_envelope(self, job: JobRecord, *, image_ref: str) -> dict[str, Any]:
        ingress: dict[str, Any] = {
            "external": True,
            "targetPort": 8080,
            "transport": "auto",
            "allowInsecure": False,
        }
        certificate = self.az.certificate_for(job.org_slug)
        if certificate:
            ingress["customDomains"] = [
                {
                    "name": preview_hostname(
                        job.app_name, job.org_slug, self.settings.preview_domain
                    ),
                    "bindingType": "SniEnabled",
                    "certificateId": certificate,
                }
            ]
        probe = {
            "type": "Readiness",
            "tcpSocket": {"port": 8080},
            "periodSeconds": 10,
            "failureThreshold": 6,
        }
        return self._envelope(
            job.job_id,
            {
                "environmentId": self.az.environment_id,
                "configuration": {
                    "ingress": ingress,
                    "registries": [
                        {
                            "server": self.az.registry_server,
                            "identity": self.az.identity_resource_id,
                        }
                    ],
                },
                "template": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image_ref,
                            "resources": {
                                "cpu": self.az.preview_cpu,
                                "memory": self.az.preview_memory,
                            },
                            "env": [{"name": "PORT", "value": "8080"}],
                            "probes": [probe],
                        }
                    ],
                    "scale": {"minReplicas": 0, "maxReplicas": 1},
                },
            },
        )

    def deploy_preview(self, job: JobRecord, *, image_ref: str) -> None:
        envelope = self.preview_envelope(job, image_ref=image_ref)
        with translate_azure_errors("deploy preview"):
            # No waiting here: poll_preview follows provisioning on the orchestrator's timers.
            self.aca.container_apps.begin_create_or_update(
                self.az.resource_group,
                preview_app_name(job.job_id),
                aca_models.ContainerApp(envelope),
                polling=False,
            )

    def poll_preview(self, job: JobRecord) -> StepStatus:
        try:
            with translate_azure_errors("read preview"):
                app = self.aca.container_apps.get(
                    self.az.resource_group, preview_app_name(job.job_id)
                )
        except NotFound:
            return StepStatus(StepState.MISSING)
        props = app.properties
        raw_state = props.provisioning_state if props is not None else None
        state = str(getattr(raw_state, "value", raw_state) or "")
        if state in ("Failed", "Canceled"):
            return StepStatus(StepState.FAILED, f"preview provisioning {state.lower()}")
        ingress = props.configuration.ingress if props and props.configuration else None
        fqdn = ingress.fqdn if ingress is not None else None
        if state != "Succeeded" or not fqdn:
            return StepStatus(StepState.RUNNING)
        try:  # warm it once: scale-to-zero means the first request starts a replica
            warm = self.http.get(f"https://{fqdn}{self.az.warm_path}")
        except httpx.HTTPError:
            return StepStatus(StepState.RUNNING, "preview not answering yet")
        if warm.status_code >= 500:
            return StepStatus(StepState.RUNNING, f"preview answered {warm.status_code}")
        host = (
            preview_hostname(job.app_name, job.org_slug, self.settings.preview_domain)
            if self.az.certificate_for(job.org_slug)
            else fqdn
        )
        return StepStatus(StepState.SUCCEEDED, facts={"preview_url": f"https://{host}"})

    # -- teardown and sweep ------------------------------------------------------------------
    def teardown(self, job_id: str) -> list[str]:
        removed: list[str] = []
        rg = self.az.resource_group
        marker = self._marker(job_id, legacy=True)
        if marker is not None:
            try:
                with translate_azure_errors("cancel image build"):
                    run = self.tasks.runs.get(rg, self.az.acr_name, marker["run_id"])
                    if str(run["properties"].get("status")) in _RUNNING_RUN:
                        self.tasks.runs.cancel(rg, self.az.acr_name, marker["run_id"])
                        removed.append("image-run")
            except NotFound:
                pass
        deletions: list[tuple[str, Callable[[], LROPoller[None]]]] = [
            ("build-job", partial(self.aca.jobs.begin_delete, rg, build_job_name(job_id))),
            (
                "preview-app",
                partial(self.aca.container_apps.begin_delete, rg, preview_app_name(job_id)),
            ),
        ]
        for kind, delete in deletions:
            try:
                with translate_azure_errors(f"delete {kind}"):
                    delete().result()
                removed.append(kind)
            except NotFound:
                continue
        try:
            with translate_azure_errors("delete image repository"), self._registry() as registry:
                registry.delete_repository(repository_name(job_id))
            removed.append("repository")
        except NotFound:
            pass
        return removed

    def list_resources(self) -> list[ResourceRef]:
        refs: list[ResourceRef] = []
        rg = self.az.resource_group
        with translate_azure_errors("list build jobs"):
            jobs = list(self.aca.jobs.list_by_resource_group(rg))
        with translate_azure_errors("list preview apps"):
            apps = list(self.aca.container_apps.list_by_resource_group(rg))
        for kind, items in (("build-job", jobs), ("preview-app", apps)):
            for item in items:
                job_id = (item.tags or {}).get(JOB_TAG)
                if job_id:
                    refs.append(ResourceRef(job_id, kind, str(item.name)))
        with translate_azure_errors("list image repositories"), self._registry() as registry:
            repos = list(registry.list_repository_names())
        for repo in repos:
            job_id = job_id_from_repository(repo)
            if job_id:
                refs.append(ResourceRef(job_id, "repository", repo))
        return refs


def _prop(item: Any, name: str) -> Any:
    direct = getattr(item, name, None)
    if direct is not None:
        return direct
    props = getattr(item, "properties", None)
    return getattr(props, name, None) if props is not None else None


def _execution_status(execution: Any) -> str:
    status = _prop(execution, "status")  # an SDK enum (JobExecutionRunningState) or a string
    return str(getattr(status, "value", status) or "Unknown")


def _started(execution: Any) -> datetime:
    value = _prop(execution, "start_time")
    return value if isinstance(value, datetime) else datetime.min.replace(tzinfo=UTC)
