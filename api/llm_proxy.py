"""POST /v1/messages: the builders' LLM endpoint (per-job tokens, not API keys)."""

from __future__ import annotations

import threading

import azure.durable_functions as df
import azure.functions as func

from shared.llm_proxy import LlmProxy, ProxySettings
from shared.services import get_services

bp = df.Blueprint()
_lock = threading.Lock()
_current: LlmProxy | None = None


def get_proxy() -> LlmProxy:
    """One proxy per services object (its in-flight counters and rate pause are process-wide)."""
    global _current
    svc = get_services()
    with _lock:
        if _current is None or _current.svc is not svc:
            _current = LlmProxy(svc, ProxySettings.from_env())
        return _current


def use_proxy(proxy: LlmProxy | None) -> None:
    global _current
    with _lock:
        _current = proxy


@bp.route(route="v1/messages", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def messages(req: func.HttpRequest) -> func.HttpResponse:
    reply = get_proxy().handle(req.headers, req.get_body())
    headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
    return func.HttpResponse(
        reply.body,
        status_code=reply.status,
        headers=headers,
        mimetype=reply.headers.get("content-type", "application/json"),
    )
