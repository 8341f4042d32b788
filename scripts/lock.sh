#!/usr/bin/env bash
# Regenerates the hashed dependency locks from the declared dependencies (needs PyPI):
#   requirements.in     -> requirements.txt      runtime: what `func` and the remote build install
#   requirements-dev.in -> requirements-dev.txt  runtime + tools and tests: what bootstrap installs
# Pins already in a lock are kept unless asked otherwise, so a run after editing a .in file
# changes only what that edit needs:
#   bash scripts/lock.sh                           # after adding, removing or re-pinning a package
#   bash scripts/lock.sh --upgrade-package httpx   # move one package (and what it needs)
#   bash scripts/lock.sh --upgrade                 # move everything to the newest allowed
# Then `bash scripts/test.sh` installs the new lock (bootstrap notices it changed) and runs the
# checks. Commit the .in and .txt files together.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || bash scripts/bootstrap.sh
# The Functions runtime is Python 3.11 on Linux; --universal keeps developers' macOS/Windows
# wheels (and their hashes) in the lock too.
compile=(.venv/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11
  --custom-compile-command "bash scripts/lock.sh")
"${compile[@]}" "$@" requirements.in -o requirements.txt
# Constrained by the runtime lock, so a package both need has one version in both.
"${compile[@]}" "$@" requirements-dev.in -c requirements.txt -o requirements-dev.txt
echo "locked: requirements.txt ($(grep -c '^[A-Za-z0-9]' requirements.txt) packages)," \
  "requirements-dev.txt ($(grep -c '^[A-Za-z0-9]' requirements-dev.txt) packages)"
