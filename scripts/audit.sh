#!/usr/bin/env bash
# Known-vulnerability audit of both locks with pip-audit (PyPI's advisory data). Not part of
# scripts/test.sh or CI: pip-audit asks PyPI's per-release JSON API
# (https://pypi.org/pypi/<name>/<version>/json), which this project's sandbox and CI cannot reach
# (only the package index itself is served there). Run it where that API answers, e.g. before a
# release. --strict fails on any package that could not be audited, so an unreachable service
# never reads as "no vulnerabilities".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/pip-audit --strict --progress-spinner off --require-hashes --disable-pip \
  -r requirements.txt -r requirements-dev.txt "$@"
