"""The Functions app: wiring only. Each module below registers its own blueprint."""

import azure.durable_functions as df
import azure.functions as func

from activities import build, cleanup, image, preview
from api import build_events, fallback, jobs_control, jobs_read, jobs_submit, service
from orchestrators import run_job
from shared import log_context, telemetry
from shared.config import settings
from timers import maintenance

log_context.install()  # job_id/instance_id on every log line, secrets scrubbed
telemetry.configure()  # App Insights via OpenTelemetry when a connection string is set
settings.log_unresolved_secrets()  # one line at start if a Key Vault reference did not resolve

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (
    jobs_submit.bp,
    jobs_read.bp,
    jobs_control.bp,
    build_events.bp,
    service.bp,
    run_job.bp,
    build.bp,
    image.bp,
    preview.bp,
    cleanup.bp,
    maintenance.bp,
    fallback.bp,  # the catch-all route; the host tries it last (see api.routing)
):
    app.register_functions(blueprint)
