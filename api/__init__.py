"""HTTP triggers for the /v1 API."""
