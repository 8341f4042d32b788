#!/usr/bin/env bash
# Installs what is missing, then runs the service locally: the same function code served by the
# dev host (no `func` needed) on http://127.0.0.1:${PORT:-7071}, with Azurite and the local build
# backend. Ctrl-C stops the server and Azurite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export FOUNDRY_SERVICE_API_KEYS="${FOUNDRY_SERVICE_API_KEYS:-dev-key}"
export FOUNDRY_SERVICE_BUILD_BACKEND="${FOUNDRY_SERVICE_BUILD_BACKEND:-local}"
export FOUNDRY_SERVICE_LOCAL_WORK_DIR="${FOUNDRY_SERVICE_LOCAL_WORK_DIR:-.foundry-local}"
echo "API key for this run: $FOUNDRY_SERVICE_API_KEYS (set FOUNDRY_SERVICE_API_KEYS to change it)"
exec .venv/bin/python -m devhost.server --azurite --port "${PORT:-7071}" "$@"
