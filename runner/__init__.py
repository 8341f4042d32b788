"""The build job's runner: the entrypoint of the build container (``python -m runner``).

It consumes the service's storage grant, runs the builder as a child process, streams the
builder's output into the job's append blobs, uploads the source, and uploads a diagnostics
archive that carries the result marker. It depends on the standard library and
azure-storage-blob only (SAS-URL clients, never an account credential), so the image needs
nothing from the service's code.
See ``docs/build-job.md`` for the contract.
"""

RUNNER_SCHEMA_VERSION = 1
#: The result marker is this metadata of the diagnostics archive (the service reads it under the
#: same name: shared/storage/job_blobs.py).
RESULT_METADATA_KEY = "foundry_result"
