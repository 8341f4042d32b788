from __future__ import annotations

from shared.domain.models import JobStatus
from tests.conftest import submission
from tests.scripted_backend import ScriptedBackend


def test_submit_runs_to_ready_with_scripted_backend(api, services, driver) -> None:
    services.backend = ScriptedBackend()
    status, body, headers = api.call("POST", "/v1/jobs", body=submission())
    assert status == 202, body
    job_id = body["job_id"]
    assert headers["Location"] == f"/v1/jobs/{job_id}"
    inst = driver.run_to_completion(job_id)
    assert inst.status == "Completed", inst.error
    status, view, _ = api.call("GET", f"/v1/jobs/{job_id}")
    assert status == 200
    assert view["status"] == JobStatus.READY.value, view
