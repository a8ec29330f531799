#!/usr/bin/env bash
# Set everything up (venv, Xvfb) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/ensure_xvfb.sh
exec .venv/bin/python -m pytest -m "not slow" "$@"
