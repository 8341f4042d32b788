#!/usr/bin/env bash
# Installs what the project needs into the repository: a Python venv (.venv) from the hashed
# lock (requirements-dev.txt, which includes the runtime lock requirements.txt), and the Node
# tooling (Azurite, pinned in package-lock.json; the Mermaid checker in tools/mermaid-check).
# Safe to run again; it only does what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11+ is required (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # Every package, pip included, is pinned with its hashes: pip refuses anything else.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is required for the Azurite storage emulator (install Node.js 20+)" >&2
  exit 1
fi
if [ ! -x node_modules/.bin/azurite ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
checker=tools/mermaid-check
if [ ! -d "$checker/node_modules" ] || [ "$checker/package-lock.json" -nt "$checker/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$checker" --no-audit --no-fund --loglevel=error
fi
