#!/usr/bin/env bash
# The test command: install what is missing, then lint, type-check and run the whole suite
# (it starts and stops its own Azurite on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
.venv/bin/python -m pytest "$@"
