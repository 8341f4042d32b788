"""What the runner adds to the builder's inputs: the preview contract every generated app must
meet, so the service can build and serve it (see "What the source must contain" in
docs/build-job.md)."""

PREVIEW_CONTRACT_TASK = (
    "\n- [ ] TPREVIEW.1: Produce a root-level Dockerfile that serves the app, binds 0.0.0.0 "
    "on $PORT (default 8080), and answers HTTP 200 on / or /healthz. SQLite or in-memory "
    "storage only. Do not set X-Frame-Options or a frame-ancestors CSP.\n"
)
