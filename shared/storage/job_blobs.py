"""Job objects in Blob storage, laid out as the contract has them under ``jobs/<id>/``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    generate_blob_sas,
)

from shared.errors import AlreadyExists, NotFound, TerminalBackendError, translate_azure_errors

#: SPEC.md and TASKS.md of a submit, in one JSON object ``{"spec_md": …, "tasks_md": …}``: one
#: blob write instead of two (a blob write costs about 140 table transactions, docs/cost-model.md).
#: The builder still finds ``SPEC.md`` and ``TASKS.md`` in its work dir (the runner writes them).
INPUTS_PATH = "input/inputs.json"
#: Where a job submitted before :data:`INPUTS_PATH` keeps its inputs. Still granted (signing a
#: URL is no storage request) so a build runner can start such a job after an upgrade.
LEGACY_INPUT_PATHS = {"spec_md": "input/SPEC.md", "tasks_md": "input/TASKS.md"}
STREAM_PATH = "logs/stream.jsonl"
STDERR_PATH = "logs/stderr.log"
ARTIFACT_PATH = "output/source.tar.gz"
DIAGNOSTICS_PATH = "diagnostics/diagnostics.tar.gz"
#: The build runner's result marker is metadata of the diagnostics archive, set by the same
#: upload (one write for both; docs/build-job.md): a diagnostics blob without it is not one the
#: runner wrote.
RESULT_METADATA_KEY = "foundry_result"
#: What the build job may touch, ``grant name -> (blob under jobs/<id>/, SAS permissions)``: read
#: its inputs, append to (and read back) its own logs, create its outputs. The grant names are
#: the build runner's contract (runner/grant.py); reading the stream and the diagnostics' result
#: marker lets a restarted runner find what an earlier one did.
BUILDER_GRANT: dict[str, tuple[str, str]] = {
    "inputs": (INPUTS_PATH, "r"),
    **{name: (path, "r") for name, path in LEGACY_INPUT_PATHS.items()},
    "stream_log": (STREAM_PATH, "racw"),
    "stderr_log": (STDERR_PATH, "racw"),
    "diagnostics": (DIAGNOSTICS_PATH, "rcw"),
    "source_artifact": (ARTIFACT_PATH, "cw"),
}


def job_blob(job_id: str, relative: str) -> str:
    return f"jobs/{job_id}/{relative}"


class JobBlobs:
    def __init__(self, service: BlobServiceClient, *, container: str) -> None:
        self.service = service
        self.container: ContainerClient = service.get_container_client(container)

    def create_container(self) -> None:
        try:
            with translate_azure_errors("create container"):
                self.container.create_container()
        except AlreadyExists:  # the normal case after the first start
            pass

    # -- inputs ------------------------------------------------------------------------------
    def put_inputs(self, job_id: str, *, spec_md: str, tasks_md: str) -> None:
        data = json.dumps({"spec_md": spec_md, "tasks_md": tasks_md}, ensure_ascii=False)
        with translate_azure_errors("store job inputs"):
            self.container.upload_blob(
                job_blob(job_id, INPUTS_PATH),
                data.encode("utf-8"),
                overwrite=True,
                content_settings=ContentSettings(content_type="application/json; charset=utf-8"),
            )

    def read_inputs(self, job_id: str) -> tuple[str, str]:
        """``(spec_md, tasks_md)`` as submitted."""
        inputs = json.loads(self.read_bytes(job_id, INPUTS_PATH))
        return str(inputs["spec_md"]), str(inputs["tasks_md"])

    def delete_inputs(self, job_id: str) -> None:
        """Remove the inputs of a job that was never created, in either layout (idempotent;
        deletes are free)."""
        for rel in (INPUTS_PATH, *LEGACY_INPUT_PATHS.values()):
            try:
                with translate_azure_errors("delete job inputs"):
                    self.container.delete_blob(job_blob(job_id, rel))
            except NotFound:
                pass

    def job_ids_with_prefix(self, id_prefix: str) -> list[str]:
        """Ids of the jobs with objects stored whose id (after ``fj_``) starts with ``id_prefix``:
        one listing call per 5,000 jobs, one entry per job (the listing stops at the job's
        folder)."""
        start = job_blob(f"fj_{id_prefix}", "")[:-1]
        with translate_azure_errors("list job folders"):
            return [
                item.name.split("/")[1]
                for item in self.container.walk_blobs(name_starts_with=start, delimiter="/")
                if item.name.endswith("/")
            ]

    def read_text(self, job_id: str, relative: str) -> str:
        with translate_azure_errors(f"read {relative}"):
            return self.container.download_blob(job_blob(job_id, relative)).readall().decode()

    # -- the append-only build log -----------------------------------------------------------
    def ensure_log(self, job_id: str) -> None:
        client = self.container.get_blob_client(job_blob(job_id, STREAM_PATH))
        try:
            client.create_append_blob(
                content_settings=ContentSettings(content_type="application/x-ndjson"),
                if_none_match="*",
            )
        except (ResourceExistsError, HttpResponseError) as exc:
            if getattr(exc, "status_code", None) not in (409, 412):
                with translate_azure_errors("create log blob"):
                    raise

    def append_log(self, job_id: str, data: bytes, *, at_offset: int) -> int:
        """Append ``data`` only if the blob is exactly ``at_offset`` bytes long (idempotent under
        retries: a repeated append fails its position check). Returns the new length."""
        if not data:
            return at_offset
        client = self.container.get_blob_client(job_blob(job_id, STREAM_PATH))
        try:
            client.append_block(data, appendpos_condition=at_offset)
        except HttpResponseError as exc:
            if exc.status_code != 412:
                with translate_azure_errors("append log"):
                    raise
            # Position mismatch: an earlier attempt already appended. Trust the blob's size.
            return self.log_size(job_id)
        return at_offset + len(data)

    def log_size(self, job_id: str) -> int:
        client = self.container.get_blob_client(job_blob(job_id, STREAM_PATH))
        try:
            with translate_azure_errors("log size"):
                return int(client.get_blob_properties().size)
        except NotFound:
            return 0

    def read_log(self, job_id: str, *, offset: int = 0, max_bytes: int | None = None) -> bytes:
        """The log's bytes from ``offset`` (at most ``max_bytes``): one ranged read, empty when
        the log does not exist yet (the runner creates it with its first append) or has nothing
        past ``offset``."""
        return self.read_log_page(job_id, offset=offset, max_bytes=max_bytes)[0]

    def read_log_page(
        self, job_id: str, *, offset: int = 0, max_bytes: int | None = None
    ) -> tuple[bytes, int]:
        """As :meth:`read_log`, with the log's whole length as the same reply reports it (its
        ``Content-Range``): whether more follows costs no second request."""
        client = self.container.get_blob_client(job_blob(job_id, STREAM_PATH))
        try:
            with translate_azure_errors("read log"):
                download = client.download_blob(offset=offset, length=max_bytes)
                data = download.readall()
        except NotFound:
            return b"", 0
        except TerminalBackendError as exc:
            if exc.code == "InvalidRange":  # HTTP 416: nothing past offset
                return b"", offset
            raise
        total = str(download.properties.content_range or "").rpartition("/")[2]
        return data, int(total) if total.isdigit() else offset + len(data)

    # -- artifacts ---------------------------------------------------------------------------
    def put_artifact(self, job_id: str, data: bytes) -> None:
        with translate_azure_errors("store artifact"):
            self.container.upload_blob(
                job_blob(job_id, ARTIFACT_PATH),
                data,
                overwrite=True,
                content_settings=ContentSettings(content_type="application/gzip"),
            )

    def exists(self, job_id: str, relative: str) -> bool:
        with translate_azure_errors("check blob"):
            return bool(self.container.get_blob_client(job_blob(job_id, relative)).exists())

    def result_marker(self, job_id: str) -> dict[str, Any] | None:
        """The build runner's result marker (docs/build-job.md), or ``None`` before it has
        finished: the diagnostics archive's :data:`RESULT_METADATA_KEY` metadata."""
        client = self.container.get_blob_client(job_blob(job_id, DIAGNOSTICS_PATH))
        try:
            with translate_azure_errors("read result marker"):
                metadata = client.get_blob_properties().metadata
        except NotFound:
            return None
        raw = metadata.get(RESULT_METADATA_KEY)
        return dict(json.loads(raw)) if raw else None

    def read_bytes(self, job_id: str, relative: str) -> bytes:
        with translate_azure_errors(f"read {relative}"):
            return self.container.download_blob(job_blob(job_id, relative)).readall()

    # -- signed URLs -------------------------------------------------------------------------
    def signed_url(self, job_id: str, relative: str, *, permission: str, ttl_secs: int) -> str:
        """A SAS URL for one blob (see :meth:`signed_urls`)."""
        return self.signed_urls(job_id, {"url": (relative, permission)}, ttl_secs=ttl_secs)["url"]

    def signed_urls(
        self, job_id: str, grants: Mapping[str, tuple[str, str]], *, ttl_secs: int
    ) -> dict[str, str]:
        """SAS URLs for several blobs of one job, ``name -> (relative path, permission)``.

        User-delegation SAS under managed identity (one delegation key for all of them), service
        SAS with an account key (Azurite, or when explicitly configured)."""
        now = datetime.now(UTC)
        start, expiry = now - timedelta(minutes=5), now + timedelta(seconds=ttl_secs)
        account_key = getattr(self.service.credential, "account_key", None)
        with translate_azure_errors("sign blob URL"):
            signer: dict[str, Any] = (
                {"account_key": account_key, "protocol": None}
                if account_key
                else {
                    "user_delegation_key": self.service.get_user_delegation_key(start, expiry),
                    "protocol": "https",
                }
            )
            urls = {}
            for key, (relative, permission) in grants.items():
                name = job_blob(job_id, relative)
                sas = generate_blob_sas(
                    account_name=self.service.account_name or "",
                    container_name=self.container.container_name,
                    blob_name=name,
                    permission=BlobSasPermissions.from_string(permission),
                    start=start,
                    expiry=expiry,
                    **signer,
                )
                urls[key] = f"{self.container.get_blob_client(name).url}?{sas}"
        return urls


def builder_grant(blobs: JobBlobs, job_id: str, *, ttl_secs: int) -> str:
    """The value of the build job's ``FOUNDRY_STORAGE_GRANT``: a JSON object of SAS URLs, one per
    :data:`BUILDER_GRANT` entry (the format runner/grant.py parses). A secret: never log it."""
    return json.dumps(blobs.signed_urls(job_id, BUILDER_GRANT, ttl_secs=ttl_secs))
