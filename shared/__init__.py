"""Code shared by the HTTP API, the orchestrator's activities and the timers."""
