"""The API's response bodies and query parameters as pydantic models.

These classes are the single statement of those shapes: ``api.views`` builds every JSON body
through them (so a body cannot leave the service in a shape they do not describe), the query
parsers in ``api.query`` read their constraints, and ``api.openapi`` generates the document's
components from them.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.http import ErrorCode
from shared.domain.ids import JOB_ID_PATTERN
from shared.domain.models import JobStatus

JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, examples=["fj_01JZ8Q4T6W3M9V2K7H5N1R0C8D"])]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
#: The biggest integer a query parameter takes (an i64): more digits are refused unparsed.
MAX_QUERY_INT = 2**63 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(_Body):
    """Every error of every route: ``error`` is a stable code, ``message`` is for people."""

    model_config = ConfigDict(title="Error")
    schema_version: Literal[1] = 1
    error: ErrorCode
    message: str


class Accepted(_Body):
    """``202`` for a new submit and for an idempotent replay alike."""

    schema_version: Literal[1] = 1
    job_id: JobId
    status: JobStatus
    queue_position: int | None = Field(description="1-based while queued, else null.")
    created_at: Timestamp
    poll_url: str


class JobError(_Body):
    code: str = Field(description="A failure code: internal_error, backend_unavailable, ...")
    message: str


class _Stored(BaseModel):
    """A shape read back from storage: keys it does not know are dropped, not refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Findings(_Stored):
    high: int = 0
    medium: int = 0
    low: int = 0


class Quality(_Stored):
    audit: Literal["pending", "pass", "fail"]
    findings: Findings


class Detail(_Body):
    tasks_total: int = 0
    tasks_completed: int = 0
    tasks_wip: int = 0
    stages: list[Any] = Field(default_factory=list, description="Always empty, as in the original.")
    current_stage: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The stage the build is in, when known (absent otherwise).",
    )


class ProxyUsage(_Stored):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Usage(_Body):
    input_tokens: int
    output_tokens: int
    proxy: ProxyUsage = Field(description="What the builder's LLM calls through the proxy cost.")


class JobView(_Body):
    """A job, as ``GET /v1/jobs/{id}``, the list and cancel return it."""

    schema_version: Literal[1] = 1
    job_id: JobId
    app_name: str
    org_slug: str | None
    owner: str
    status: JobStatus
    phase: str
    percent: int = Field(ge=0, le=100)
    stage_label: str | None
    preview_url: str | None
    preview_expires_at: Timestamp | None
    expires_at: Timestamp | None = Field(description="Same as preview_expires_at.")
    queue_position: int | None
    cost_usd: float
    usage: Usage
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    ttl_hours: int
    error: JobError | None
    quality: Quality
    detail: Detail


class JobList(_Body):
    schema_version: Literal[1] = 1
    jobs: list[JobView] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done.")


class LogPage(_Body):
    schema_version: Literal[1] = 1
    events: list[dict[str, Any]] = Field(
        description='The stream\'s JSON lines; a line that is not JSON is {"raw": "<line>"}.'
    )
    next_cursor: Annotated[str, Field(pattern=r"^[0-9]+$")]
    complete: bool = Field(description="The job is finished and this page reached the end.")


class Health(_Body):
    """Always sent with 200; a field is absent when it could not be found out."""

    status: Literal["ok", "degraded"]
    queue_depth: int | None = None
    workers: int | None = None
    backend: str | None = None
    reasons: list[str] | None = Field(
        default=None,
        description="Why the status is degraded: setting names and causes, never values.",
    )


# -- query parameters --------------------------------------------------------------------------
class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ListJobsQuery(_Query):
    status: JobStatus | None = Field(default=None, description="Only jobs in this status.")
    owner: str | None = Field(default=None, description="Only jobs of this owner.")
    limit: int = Field(default=100, ge=1, le=100, description="Page size (newest first).")
    cursor: str | None = Field(
        default=None, max_length=1024, description="next_cursor of the previous page."
    )


class LogsQuery(_Query):
    stage: str | None = Field(default=None, description="Only lines whose `stage` is this.")
    tail: int | None = Field(default=None, ge=0, le=MAX_QUERY_INT, description="Last N lines.")
    cursor: int | None = Field(
        default=None,
        ge=0,
        le=MAX_QUERY_INT,
        description="Byte offset: switches to JSON pages (start with 0, then next_cursor).",
    )


# -- the LLM proxy (documented, not used to parse: the proxy forwards the bytes it was sent) ---
class ProxyErrorCode(enum.StrEnum):
    """The ``error`` strings of the proxy's own refusals (``shared.llm_proxy._deny``; a test holds
    this list equal to the codes that module sends)."""

    UNAUTHORIZED = "unauthorized"
    INVALID_REQUEST = "invalid_request"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    OUTPUT_TOKENS_TOO_HIGH = "output_tokens_too_high"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_CONCURRENT_REQUESTS = "too_many_concurrent_requests"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_ERROR = "upstream_error"
    PROXY_UNCONFIGURED = "proxy_unconfigured"
    UNAVAILABLE = "unavailable"


class ProxyError(BaseModel):
    """A refusal by the proxy itself (upstream errors pass through in Anthropic's own shape)."""

    model_config = ConfigDict(extra="allow", title="ProxyError")
    type: Literal["error"] = "error"
    error: ProxyErrorCode
    message: str


class BuildNotice(BaseModel):
    """What the build runner tells the service; anything else in the object is ignored."""

    model_config = ConfigDict(
        extra="ignore", title="BuildNotice", json_schema_extra={"examples": [{"event": "finished"}]}
    )
    event: Literal["progress", "finished"] = Field(
        description="`progress`: fold the log written so far; `finished`: the builder exited "
        "(frees its build slot and tells the orchestration at once)."
    )


class BuildNoticeAccepted(_Body):
    schema_version: Literal[1] = 1
    job_id: str
    event: Literal["progress", "finished"]


class MessagesRequest(BaseModel):
    """An Anthropic Messages API request. The proxy checks ``model`` and ``max_tokens`` and
    forwards the body unchanged, so every other Messages API field passes through."""

    model_config = ConfigDict(
        extra="allow",
        title="MessagesRequest",
        json_schema_extra={
            "examples": [
                {
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 1024,
                    "messages": [{"role": "user", "content": "Write the landing page."}],
                }
            ]
        },
    )
    model: str = Field(description="Must start with a FOUNDRY_SERVICE_PROXY_MODEL_PREFIXES entry.")
    max_tokens: int = Field(description="At most FOUNDRY_SERVICE_PROXY_MAX_OUTPUT_TOKENS.")
    messages: list[dict[str, Any]]
    stream: bool | None = Field(default=None, description="Streamed replies are passed through.")
