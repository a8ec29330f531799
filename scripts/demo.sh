#!/usr/bin/env bash
# Set everything up and open napari with napari-cebra on the bundled sample recording.
# Without a display it runs the same workflow headless and writes a report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m napari_cebra demo "$@"
