"""Unauthenticated service routes: health and the OpenAPI document."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import Authenticator
from api.edge import handle_public
from api.http import JSON, json_response
from api.openapi import openapi_document, served_json
from api.schemas import Health
from shared.config.settings import ENV_PREFIX, Settings, unresolved_secret_settings
from shared.domain.models import JobStatus
from shared.errors import ConfigurationError
from shared.services import get_services

log = logging.getLogger("foundry.api")
bp = df.Blueprint()
API_KEYS = ENV_PREFIX + "API_KEYS"
__all__ = ["bp", "configuration_problems", "healthz", "openapi", "openapi_document"]


@bp.route(route="v1/healthz", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def healthz(req: func.HttpRequest) -> func.HttpResponse:
    """Always ``200`` (the contract): ``ok``, or ``degraded`` with ``reasons``. The route is
    unauthenticated, so reasons name settings and causes, never a setting's value."""
    return handle_public(req, _health)


def _health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        svc = get_services()
    except ConfigurationError as exc:
        log.error("healthz: configuration error: %s", exc)
        cause = "the service configuration is invalid (see the log)"
        return _reply([*_unresolved(unresolved_secret_settings()), cause], {})
    except Exception as exc:  # noqa: BLE001 - health must answer even when storage does not
        log.warning("healthz: storage unavailable on start: %s", exc)
        return _reply([*_unresolved(unresolved_secret_settings()), "storage is unavailable"], {})
    reasons = configuration_problems(svc.settings)
    facts: dict[str, Any] = {
        "workers": svc.settings.max_concurrent_builds,
        "backend": svc.backend.name,
    }
    try:
        facts["queue_depth"] = svc.jobs.count([JobStatus.QUEUED])
    except Exception as exc:  # noqa: BLE001 - a stalled or unreachable storage account
        log.warning("healthz: storage unavailable: %s", exc)
        reasons.append("storage is unavailable")
    return _reply(reasons, facts)


def configuration_problems(settings: Settings) -> list[str]:
    """What keeps a running service from doing its job, by setting name."""
    reasons = _unresolved(settings.unresolved_secrets)
    if API_KEYS not in settings.unresolved_secrets:
        try:
            if not Authenticator(settings.api_keys).configured:
                reasons.append(f"{API_KEYS} has no keys: every /v1 call is refused")
        except ConfigurationError:
            reasons.append(f"{API_KEYS} is malformed: every /v1 call is refused")
    return reasons


def _unresolved(names: Iterable[str]) -> list[str]:
    return [f"{name} is an unresolved Key Vault reference (not configured)" for name in names]


def _reply(reasons: list[str], facts: dict[str, Any]) -> func.HttpResponse:
    health = Health(status="degraded" if reasons else "ok", reasons=reasons or None, **facts)
    return json_response(200, health.model_dump(exclude_none=True))


@bp.route(route="v1/openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return handle_public(
        req, lambda req: func.HttpResponse(served_json(), status_code=200, mimetype=JSON)
    )
