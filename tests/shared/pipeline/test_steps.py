"""The deploy-phase checks (``check_image``, ``check_preview``) against a job row in Azurite and a
backend double whose poll answers what each case says: how a poll's answer becomes the step's
result, and what a succeeded image build sets going."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from ulid import ULID

from shared.backends.base import StepState, StepStatus
from shared.domain.models import FailureCode, JobRecord, JobStatus, StepResult
from shared.domain.payloads import ImageBuilt, PreviewHealthy
from shared.pipeline import steps
from shared.services import Services
from tests.scripted_backend import ScriptedBackend

Check = Callable[[Services, str], StepResult]
DEPLOY_FAILED = FailureCode.PREVIEW_DEPLOY_FAILED


@dataclass
class Answering(ScriptedBackend):
    """Every image-build and preview poll answers ``answer``."""

    answer: StepStatus = field(default_factory=lambda: StepStatus(StepState.RUNNING))

    def poll_image_build(self, job_id: str) -> StepStatus:
        return self.answer

    def poll_preview(self, job: JobRecord) -> StepStatus:
        return self.answer


@pytest.fixture
def backend(services: Services) -> Answering:
    services.backend = Answering()
    return services.backend


def job_in(services: Services, status: JobStatus) -> str:
    job = JobRecord(
        job_id=f"fj_{ULID()}",
        app_name="shop",
        owner="alice",
        request_hash="h",
        created_at=datetime.now(UTC),
        ttl_hours=24,
        org_slug="acme",
        status=status,
        percent=85,
        phase="image",
    )
    services.jobs.insert_job(job)
    return job.job_id


@pytest.mark.parametrize(
    ("check", "answer", "expected"),
    [
        (steps.check_image, StepStatus(StepState.RUNNING), StepResult(done=False)),
        (
            steps.check_image,
            StepStatus(StepState.FAILED),
            StepResult.failure(DEPLOY_FAILED, "image build failed"),
        ),
        (
            steps.check_image,
            StepStatus(StepState.MISSING, "run not found"),
            StepResult.failure(DEPLOY_FAILED, "run not found"),
        ),
        (
            steps.check_image,
            StepStatus(StepState.FAILED, "no tasks", code=FailureCode.IMAGE_BUILD_NOT_ALLOWED),
            StepResult.failure(FailureCode.IMAGE_BUILD_NOT_ALLOWED, "no tasks"),
        ),
        (steps.check_preview, StepStatus(StepState.RUNNING), StepResult(done=False)),
        (
            steps.check_preview,
            StepStatus(StepState.FAILED),
            StepResult.failure(DEPLOY_FAILED, "preview did not become healthy"),
        ),
        (
            steps.check_preview,
            StepStatus(StepState.MISSING, "preview server exited"),
            StepResult.failure(DEPLOY_FAILED, "preview server exited"),
        ),
        (  # StepStatus.code: "report with this failure code instead of the step's default"
            steps.check_preview,
            StepStatus(StepState.FAILED, "cert", code=FailureCode.BACKEND_UNAVAILABLE),
            StepResult.failure(FailureCode.BACKEND_UNAVAILABLE, "cert"),
        ),
    ],
    ids=[
        "image-running",
        "image-failed",
        "image-missing",
        "image-failed-with-code",
        "preview-running",
        "preview-failed",
        "preview-missing",
        "preview-failed-with-code",
    ],
)
def test_a_poll_that_has_not_succeeded_maps_to_its_result(
    services: Services, backend: Answering, check: Check, answer: StepStatus, expected: StepResult
) -> None:
    job_id = job_in(services, JobStatus.DEPLOYING)
    backend.answer = answer
    assert check(services, job_id) == expected
    assert backend.resources == {}  # nothing deployed


@pytest.mark.parametrize("check", [steps.check_image, steps.check_preview])
def test_a_job_no_longer_deploying_is_canceled_without_a_poll(
    services: Services, backend: Answering, check: Check
) -> None:
    job_id = job_in(services, JobStatus.CANCELED)
    backend.answer = StepStatus(StepState.SUCCEEDED)  # facts missing: a poll would raise
    assert check(services, job_id) == StepResult.was_canceled()


def test_a_built_image_deploys_the_preview(services: Services, backend: Answering) -> None:
    job_id = job_in(services, JobStatus.DEPLOYING)
    backend.answer = StepStatus(StepState.SUCCEEDED, facts={"image_ref": "registry/shop:1"})
    assert steps.check_image(services, job_id) == StepResult(
        data=ImageBuilt("registry/shop:1").to_dict()
    )
    assert backend.resources == {job_id: {"preview"}}
    job = services.jobs.get_job(job_id)
    assert (job.phase, job.percent, job.stage_label) == ("preview", 95, "Deploying preview")


def test_a_healthy_preview_reports_its_url(services: Services, backend: Answering) -> None:
    job_id = job_in(services, JobStatus.DEPLOYING)
    backend.answer = StepStatus(StepState.SUCCEEDED, facts={"preview_url": "https://shop.test"})
    assert steps.check_preview(services, job_id) == StepResult(
        data=PreviewHealthy("https://shop.test").to_dict()
    )
    assert backend.resources == {}
