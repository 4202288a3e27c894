#!/usr/bin/env bash
# Set up (idempotent), then run the whole test suite.
# Extra arguments go to pytest, e.g.  scripts/test.sh -k fork_wait
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -ra --timeout=900 "$@" tests
