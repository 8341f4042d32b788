"""Job blobs against Azurite: idempotent log appends, one-request log reads, the inputs blob and
the result marker, read-only signed URLs, user-delegation SAS."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from shared.storage.job_blobs import RESULT_METADATA_KEY


def test_log_appends_are_idempotent_by_position(services) -> None:
    blobs = services.blobs
    blobs.ensure_log("fj_A")
    blobs.ensure_log("fj_A")  # second create is a no-op, not a truncation
    assert blobs.append_log("fj_A", b"one\n", at_offset=0) == 4
    # A retried append of the same bytes at the same position does not duplicate them.
    assert blobs.append_log("fj_A", b"one\n", at_offset=0) == 4
    assert blobs.append_log("fj_A", b"two\n", at_offset=4) == 8
    assert blobs.read_log("fj_A") == b"one\ntwo\n"
    assert blobs.read_log("fj_A", offset=4) == b"two\n"
    assert blobs.read_log("fj_A", offset=8) == b""
    assert blobs.read_log("fj_unknown") == b""


def test_signed_urls_are_read_only_and_scoped_to_one_blob(services) -> None:
    blobs = services.blobs
    blobs.put_artifact("fj_A", b"tarball")
    url = blobs.signed_url("fj_A", "output/source.tar.gz", permission="r", ttl_secs=300)
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.read() == b"tarball"
    put = urllib.request.Request(
        url, data=b"evil", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=5)
    assert refused.value.code == 403
    refused.value.close()
    other = url.replace("fj_A/output/source.tar.gz", "fj_A/input/inputs.json")
    with pytest.raises(urllib.error.HTTPError) as wrong_blob:
        urllib.request.urlopen(other, timeout=5)
    assert wrong_blob.value.code == 403
    wrong_blob.value.close()


def test_without_an_account_key_urls_are_user_delegation_sas() -> None:
    """Under managed identity there is no key: signing asks the service for a delegation key."""
    from azure.core.credentials import AccessToken
    from azure.storage.blob import BlobServiceClient

    from shared.errors import FoundryError
    from shared.storage.job_blobs import JobBlobs
    from tests.azurite import free_port

    class Token:
        def get_token(self, *scopes, **kwargs):
            return AccessToken("not-a-real-token", 4102444800)

    seen = []
    # Token credentials need HTTPS; nothing listens on this loopback port, the request is the point.
    endpoint = f"https://127.0.0.1:{free_port()}/devstoreaccount1"
    client = BlobServiceClient(
        endpoint,
        credential=Token(),
        retry_total=0,
        raw_request_hook=lambda r: seen.append(r.http_request.url),
    )
    with pytest.raises(FoundryError):
        JobBlobs(client, container="c").signed_url("fj_A", "output/x", permission="r", ttl_secs=60)
    assert any("comp=userdelegationkey" in url for url in seen)


def test_a_log_read_is_one_request_whether_the_log_exists_or_not(metered) -> None:
    svc, meter = metered
    blobs = svc.blobs
    for job_id, offset in (("fj_missing", 0), ("fj_empty", 0), ("fj_some", 0), ("fj_some", 5)):
        if job_id != "fj_missing":
            blobs.ensure_log(job_id)
        if job_id == "fj_some" and offset == 0:
            blobs.append_log(job_id, b"line\n", at_offset=0)
        with meter.measure() as read:
            data = blobs.read_log(job_id, offset=offset)
        assert data == (b"line\n" if (job_id, offset) == ("fj_some", 0) else b"")
        assert read.round_trips == 1, read.describe()


def test_inputs_are_one_blob_and_the_marker_is_diagnostics_metadata(services) -> None:
    blobs = services.blobs
    blobs.put_inputs("fj_A", spec_md="# Ünïcode spec\n", tasks_md="- [ ] T1: a\n")
    names = [b.name for b in blobs.container.list_blobs(name_starts_with="jobs/fj_A/")]
    assert names == ["jobs/fj_A/input/inputs.json"]
    assert blobs.read_inputs("fj_A") == ("# Ünïcode spec\n", "- [ ] T1: a\n")
    blobs.delete_inputs("fj_A")
    blobs.delete_inputs("fj_A")  # idempotent
    assert list(blobs.container.list_blobs(name_starts_with="jobs/fj_A/")) == []
    # No archive, or one without the metadata (not the runner's): no marker.
    assert blobs.result_marker("fj_A") is None
    archive = blobs.container.get_blob_client("jobs/fj_A/diagnostics/diagnostics.tar.gz")
    archive.upload_blob(b"not the runner's")
    assert blobs.result_marker("fj_A") is None
    archive.upload_blob(
        b"gz", overwrite=True, metadata={RESULT_METADATA_KEY: '{"reason":"exited","exit_code":0}'}
    )
    assert blobs.result_marker("fj_A") == {"reason": "exited", "exit_code": 0}


def test_a_log_page_knows_the_log_length_from_the_same_reply(metered) -> None:
    svc, meter = metered
    blobs = svc.blobs
    blobs.ensure_log("fj_P")
    blobs.append_log("fj_P", b"one\ntwo\n", at_offset=0)
    with meter.measure() as page:
        assert blobs.read_log_page("fj_P", offset=0, max_bytes=4) == (b"one\n", 8)
        assert blobs.read_log_page("fj_P", offset=4, max_bytes=100) == (b"two\n", 8)
        assert blobs.read_log_page("fj_P", offset=8, max_bytes=100) == (b"", 8)
        assert blobs.read_log_page("fj_none", offset=0) == (b"", 0)
    assert page.round_trips == 4, page.describe()
