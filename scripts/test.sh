#!/usr/bin/env bash
# The test command: install what is missing, then lint (ruff, with its security rules), check the
# declared dependencies against the imports (deptry), type-check and run the whole suite (it
# starts and stops its own Azurite on free loopback ports). The vulnerability audit is
# scripts/audit.sh: it needs an API the sandbox and CI cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/deptry .
.venv/bin/mypy .
.venv/bin/python -m pytest "$@"
