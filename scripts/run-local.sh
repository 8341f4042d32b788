#!/usr/bin/env bash
# Installs what is missing, then runs the service locally: the same function code served by the
# dev host (no `func` needed) on http://127.0.0.1:${PORT:-7071} (the builders' LLM proxy on the next
# port, or PROXY_PORT), with Azurite and the local build backend. Data survives restarts: Azurite persists in .azurite/, and .foundry-local/ keeps the
# settings (generated once: settings.env holds the API key, never printed), the orchestrations
# and pid files. Ctrl-C stops the server and Azurite; a killed server is cleaned up at next start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
port="${PORT:-7071}"
exec .venv/bin/python -m devhost.server --state-dir .foundry-local --azurite \
  --azurite-dir .azurite --port "$port" --proxy-port "${PROXY_PORT:-$((port + 1))}" "$@"
