"""The LLM proxy in front of a fake Anthropic upstream, as fixtures (registered for the whole
suite by ``tests/conftest.py``, so every proxy test sets it up the same way):

- ``upstream``: a :class:`~tests.proxy.harness.FakeAnthropic` on loopback, closed after the test;
- ``llm``: the :class:`~shared.llm_proxy.LlmProxy` forwarding to it with :data:`REAL_KEY`;
- ``proxy``: that ``llm`` served as deployed (:class:`~tests.proxy.harness.ServedProxy`);
- ``job_token``: a job submitted through the API and a live proxy token for it.

Only what a test asks for is built: ``upstream`` alone needs no Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.llm_proxy import LlmProxy, ProxySettings
from shared.services import Services
from tests.conftest import Api, submission
from tests.proxy.harness import FakeAnthropic, ServedProxy

#: The upstream credential: tests assert it reaches the upstream and nothing else.
REAL_KEY = "sk-ant-REAL-CREDENTIAL-DO-NOT-LEAK-0123456789"


@pytest.fixture
def upstream() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    yield server
    server.close()


@pytest.fixture
def llm(services: Services, upstream: FakeAnthropic) -> LlmProxy:
    settings = ProxySettings(
        upstream_url=upstream.url, api_key=REAL_KEY, max_output_tokens=8192, max_concurrent=2
    )
    return LlmProxy(services.tokens, services.jobs, settings)


@pytest.fixture
def proxy(llm: LlmProxy) -> Iterator[ServedProxy]:
    served = ServedProxy(lambda: llm)
    yield served
    served.close()


@pytest.fixture
def job_token(api: Api, services: Services) -> tuple[str, str]:
    """``(job_id, token)``: the token expires in an hour."""
    _, accepted, _ = api.call("POST", "/v1/jobs", body=submission())
    job_id = accepted["job_id"]
    token = services.tokens.mint(job_id, expires_at=datetime.now(UTC) + timedelta(hours=1))
    return job_id, token
