#!/usr/bin/env bash
# Create ./.venv and install napari-cebra (editable) with its test extras, pinned by
# constraints.txt. Idempotent: a stamp keyed on pyproject.toml + constraints.txt skips
# the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "napari-cebra: installing into .venv (first run takes a minute or two)..."
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[testing]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
