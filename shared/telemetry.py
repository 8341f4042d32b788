"""OpenTelemetry export to Application Insights, when the app has a connection string.

App Insights is deployed with local auth disabled, so export authenticates with the service's
managed identity. Logs keep their ``job_id``/``instance_id`` attributes as custom dimensions."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from shared.identity import service_credential

log = logging.getLogger(__name__)


def configure(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {"connection_string": connection}
    if "Authorization=AAD" in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""):
        options["credential"] = service_credential()
    configure_azure_monitor(**options)
    log.info("OpenTelemetry export to Application Insights is on")
    return True
