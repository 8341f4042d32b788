"""``/v1/openapi.json``, generated: request and response schemas, query parameters and the error
codes all come from the models (``shared.domain.validation.SubmitRequest``, ``api.schemas``,
``api.http.ErrorCode``), so the document cannot disagree with what the service validates and
sends. Only the routes' prose and wiring are written here.

    python -m api.openapi > openapi.json
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.http import ERROR_CODES
from api.routing import MAX_URL_BYTES
from api.schemas import (
    Accepted,
    BuildNotice,
    BuildNoticeAccepted,
    ErrorBody,
    Health,
    JobList,
    JobView,
    ListJobsQuery,
    LogPage,
    LogsQuery,
    MessagesRequest,
    ProxyError,
    ProxyErrorCode,
)
from shared.domain.ids import JOB_ID_PATTERN
from shared.domain.validation import SubmitRequest

REF = "#/components/schemas/{model}"
MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (SubmitRequest, "validation"),
    (MessagesRequest, "validation"),
    (BuildNotice, "validation"),
    (Accepted, "serialization"),
    (BuildNoticeAccepted, "serialization"),
    (JobView, "serialization"),
    (JobList, "serialization"),
    (LogPage, "serialization"),
    (Health, "serialization"),
    (ErrorBody, "serialization"),
    (ProxyError, "serialization"),
]
QUERY_MODELS: list[type[BaseModel]] = [ListJobsQuery, LogsQuery]

PROXY_ERROR_STATUS: dict[ProxyErrorCode, int] = {
    ProxyErrorCode.INVALID_REQUEST: 400,
    ProxyErrorCode.OUTPUT_TOKENS_TOO_HIGH: 400,
    ProxyErrorCode.UNAUTHORIZED: 401,
    ProxyErrorCode.MODEL_NOT_ALLOWED: 403,
    ProxyErrorCode.BODY_TOO_LARGE: 413,
    ProxyErrorCode.TOO_MANY_CONCURRENT_REQUESTS: 429,
    ProxyErrorCode.RATE_LIMITED: 429,
    ProxyErrorCode.UPSTREAM_ERROR: 502,
    ProxyErrorCode.PROXY_UNCONFIGURED: 503,
    ProxyErrorCode.UNAVAILABLE: 503,
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _error(status: int, example_message: str) -> dict[str, Any]:
    codes = [code for code, (sent, _) in ERROR_CODES.items() if sent == status]
    return {
        "description": "`" + "`, `".join(codes) + "`.",
        "content": _json(
            _ref(ErrorBody),
            {"schema_version": 1, "error": codes[0].value, "message": example_message},
        ),
    }


def _errors(*statuses: int) -> dict[str, Any]:
    examples = {
        400: "malformed or incomplete request body: missing required field 'owner'",
        401: "missing or invalid bearer token",
        403: "this key lacks the jobs:write scope",
        404: "job not found",
        409: "app_name is already in use by an in-flight or live build",
        413: "request body is too large",
        414: f"the URL is longer than {MAX_URL_BYTES} bytes",
        429: "the build queue is full",
        503: "storage is temporarily unavailable; retry",
    }
    found = {str(status): _error(status, examples[status]) for status in statuses}
    if 401 in statuses:
        found["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if 429 in statuses or 409 in statuses or 503 in statuses:
        for status in (409, 429, 503):
            if str(status) in found:
                found[str(status)]["headers"] = {
                    "Retry-After": {"schema": {"type": "integer"}, "required": False}
                }
    return found


_GUARDED = (401, 403, 414, 503)  # every authenticated route


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation", ref_template=REF)
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:  # optional: a query parameter is absent, never null
            prop.update(branches[0])
            prop.pop("default", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": model.model_fields[name].description or "",
                "schema": prop,
            }
        )
    return parameters


JOB_ID_PARAMETER = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
    "example": "fj_01JZ8Q4T6W3M9V2K7H5N1R0C8D",
}


def _redirect(what: str) -> dict[str, Any]:
    return {
        "description": f"Found: `Location` is a read-only SAS URL of the {what}, valid for "
        "FOUNDRY_SERVICE_SIGNED_URL_TTL_SECS.",
        "headers": {"Location": {"schema": {"type": "string", "format": "uri"}, "required": True}},
    }


def _paths() -> dict[str, Any]:
    job = [JOB_ID_PARAMETER]
    return {
        "/v1/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Submit a build (idempotent per owner + idempotency_key)",
                "requestBody": {"required": True, "content": _json(_ref(SubmitRequest))},
                "responses": {
                    "202": {
                        "description": "Accepted (also for an idempotent replay).",
                        "headers": {
                            "Location": {"schema": {"type": "string"}, "required": True},
                            "Retry-After": {"schema": {"type": "integer"}},
                        },
                        "content": _json(_ref(Accepted)),
                    },
                    **_errors(400, 409, 413, 429, *_GUARDED),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, newest first (up to 100 per page)",
                "parameters": _query_parameters(ListJobsQuery),
                "responses": {
                    "200": {"description": "A page of jobs.", "content": _json(_ref(JobList))},
                    **_errors(400, *_GUARDED),
                },
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "Poll a job",
                "parameters": job,
                "responses": {
                    "200": {
                        "description": "The job; `Retry-After` while it is not terminal.",
                        "content": _json(_ref(JobView)),
                    },
                    **_errors(404, *_GUARDED),
                },
            }
        },
        "/v1/jobs/{job_id}/logs": {
            "get": {
                "operationId": "getLogs",
                "summary": "Build log: the stream's lines as text, or JSON pages with ?cursor=",
                "parameters": [*job, *_query_parameters(LogsQuery)],
                "responses": {
                    "200": {
                        "description": "The log as text (filtered by stage, tail), or a page of "
                        "events in cursor mode.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            **_json(_ref(LogPage)),
                        },
                    },
                    **_errors(400, 404, *_GUARDED),
                },
            }
        },
        "/v1/jobs/{job_id}/artifact": {
            "get": {
                "operationId": "getArtifact",
                "summary": "Download the source archive (302 to storage)",
                "parameters": job,
                "responses": {
                    "302": _redirect("source archive (source.tar.gz)"),
                    **_errors(404, *_GUARDED),
                },
            }
        },
        "/v1/jobs/{job_id}/diagnostics": {
            "get": {
                "operationId": "getDiagnostics",
                "summary": "Download the diagnostics archive (302 to storage)",
                "parameters": job,
                "responses": {
                    "302": _redirect("diagnostics archive (diagnostics.tar.gz)"),
                    **_errors(404, *_GUARDED),
                },
            }
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job that is not terminal",
                "parameters": job,
                "responses": {
                    "200": {
                        "description": "The job (its current state if it ended meanwhile).",
                        "content": _json(_ref(JobView)),
                    },
                    **_errors(400, 404, *_GUARDED),
                },
            }
        },
        "/v1/jobs/{job_id}/preview": {
            "delete": {
                "operationId": "deletePreview",
                "summary": "Take a ready job's preview down now (the job becomes expired)",
                "parameters": job,
                "responses": {
                    "204": {"description": "Deleted."},
                    **_errors(400, 404, *_GUARDED),
                },
            }
        },
        "/v1/jobs/{job_id}/build-events": {
            "post": {
                "operationId": "buildEvent",
                "summary": "The build runner's notices (progress, finished)",
                "description": "For build containers only: authenticated with the job's own "
                "builder token (`Bearer fb_...`), never an API key. Notices are hints: the "
                "orchestration re-checks the build itself and the reconciler raises a lost "
                "`finished`, so a forged or repeated notice changes nothing.",
                "security": [{"proxyToken": []}],
                "parameters": job,
                "requestBody": {"required": True, "content": _json(_ref(BuildNotice))},
                "responses": {
                    "202": {"description": "Noted.", "content": _json(_ref(BuildNoticeAccepted))},
                    **_errors(400, 401, 413, 414, 503),
                },
            }
        },
        "/v1/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness and queue depth (no auth)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "`ok`, or `degraded` when storage does not answer.",
                        "content": _json(_ref(Health)),
                    },
                    **_errors(414),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no auth)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": _json({"type": "object"}),
                    },
                    **_errors(414),
                },
            }
        },
        "/v1/messages": {"post": _messages_operation()},
    }


def _messages_operation() -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "Anthropic's reply, passed through (JSON, or an SSE stream when "
            "`stream` is true). Upstream errors pass through with their own status and body.",
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "id": "msg_01",
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "text", "text": "Done."}],
                        "usage": {"input_tokens": 12, "output_tokens": 3},
                    },
                },
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    }
    for code, status in PROXY_ERROR_STATUS.items():
        entry = responses.setdefault(
            str(status),
            {"description": "", "content": {"application/json": {"schema": _ref(ProxyError)}}},
        )
        entry["description"] = (entry["description"] + f" `{code.value}`").strip()
        entry["content"]["application/json"].setdefault(
            "example", {"type": "error", "error": code.value, "message": "proxy request denied"}
        )
    responses["429"]["headers"] = {"retry-after": {"schema": {"type": "integer"}}}
    responses["503"]["headers"] = {"retry-after": {"schema": {"type": "integer"}}}
    return {
        "operationId": "messages",
        "summary": "The builders' LLM endpoint (Anthropic Messages API)",
        "description": "For build containers only: `Authorization: Bearer fb_...`, the per-job "
        "token the service hands the builder as ANTHROPIC_AUTH_TOKEN (API keys are not "
        "accepted). The token is valid while its job is queued, building or deploying. The "
        "request is checked (size, model prefix, max_tokens, per-token concurrency, an upstream "
        "rate-limit pause) and forwarded unchanged with the service's real credential; the "
        "caller's `anthropic-beta` header is merged with the service's. Replies stream: "
        "each upstream chunk is relayed as it arrives, so a long generation outlasts the HTTP "
        "idle limit, and a caller that hangs up stops the upstream request. Served by the LLM "
        "proxy service at FOUNDRY_SERVICE_BUILDER_PROXY_URL, not by this app. Refusals use the "
        "proxy's own envelope `{type, error, message}`, as the original proxy does.",
        "security": [{"proxyToken": []}],
        # Served by the LLM proxy, its own streaming service (docs/llm-proxy.md), not by this
        # app: builders reach it at FOUNDRY_SERVICE_BUILDER_PROXY_URL.
        "servers": [
            {
                "url": "{proxy}",
                "description": "The LLM proxy (a Container App reachable from build jobs)",
                "variables": {
                    "proxy": {
                        "default": "http://127.0.0.1:7072",
                        "description": "FOUNDRY_SERVICE_BUILDER_PROXY_URL",
                    }
                },
            }
        ],
        "parameters": [
            {
                "name": "anthropic-version",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "example": "2023-06-01"},
            }
        ],
        "requestBody": {"required": True, "content": _json(_ref(MessagesRequest))},
        "responses": responses,
    }


def _components() -> dict[str, Any]:
    _, generated = models_json_schema(MODELS, ref_template=REF)
    schemas: dict[str, Any] = generated["$defs"]
    for model in QUERY_MODELS:  # enums the query parameters refer to (JobStatus)
        defs = model.model_json_schema(mode="validation", ref_template=REF).get("$defs", {})
        schemas.update(defs)
    table = "\n".join(
        f"- `{code.value}` ({status}): {meaning}" for code, (status, meaning) in ERROR_CODES.items()
    )
    schemas["ErrorCode"]["description"] = "The stable `error` codes and their statuses:\n" + table
    schemas["ProxyErrorCode"]["description"] = "The proxy's refusal codes:\n" + "\n".join(
        f"- `{code.value}` ({status})" for code, status in PROXY_ERROR_STATUS.items()
    )
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key from FOUNDRY_SERVICE_API_KEYS.",
            },
            "proxyToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A per-job builder token (fb_...), only for the builder's routes "
                "(/v1/messages, /v1/jobs/{job_id}/build-events).",
            },
        },
        "schemas": schemas,
    }


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Context Foundry build service",
            "version": "1.0.0",
            "description": "The /v1 build-service contract (compatible with the original "
            "`foundry serve`). Every error is `{schema_version, error, message}` with a stable "
            "`error` code (see the ErrorCode schema), including an unknown route (`404 "
            "not_found`), a known route asked with another method (`405 method_not_allowed`, "
            f"with `Allow`) and a URL longer than {MAX_URL_BYTES} bytes (`414 uri_too_long`). "
            "Unknown request-body fields are ignored.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": _components(),
    }


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return build_document()


def openapi_document() -> dict[str, Any]:
    """The served document (built once per process; callers get their own copy)."""
    return copy.deepcopy(_document())


def served_json() -> str:
    return json.dumps(_document(), separators=(",", ":"))


if __name__ == "__main__":
    print(json.dumps(build_document(), indent=1))
