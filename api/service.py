"""Unauthenticated service routes: health and the OpenAPI document."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.http import json_response
from shared.domain.models import JobStatus
from shared.services import get_services

bp = df.Blueprint()
OPENAPI_PATH = Path(__file__).with_name("openapi.json")


@bp.route(route="v1/healthz", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def healthz(req: func.HttpRequest) -> func.HttpResponse:
    try:
        svc = get_services()
        depth = svc.jobs.count([JobStatus.QUEUED])
    except Exception:  # noqa: BLE001 - health must answer even when storage does not
        return json_response(200, {"status": "degraded"})
    return json_response(
        200,
        {
            "status": "ok",
            "queue_depth": depth,
            "workers": svc.settings.max_concurrent_builds,
            "backend": svc.backend.name,
        },
    )


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    return dict(json.loads(OPENAPI_PATH.read_text()))


@bp.route(route="v1/openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(200, openapi_document())
