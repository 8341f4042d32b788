"""Use cases over the stores and the backend: accepting a job, the pipeline steps each activity
runs, and the lifecycle operations (cancel, fail, expire, release) shared by API, timers and CLI."""
