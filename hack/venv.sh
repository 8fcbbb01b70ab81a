#!/usr/bin/env bash
# Creates the project virtual environment ($VENV, default .venv) with $PYTHON and installs
# PagerBridge (editable) with its test and lint extras into it. Nothing goes into the
# system interpreter, so a distribution's externally managed Python (Debian 12, Ubuntu
# 24.04) works as it is. Called by `make install`, which re-runs it only when
# pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "PagerBridge needs Python >= 3.11: '$PYTHON' was not found (set PYTHON=/path/to/python3.11 or newer)." >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    found="$("$PYTHON" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)"
    echo "PagerBridge needs Python >= 3.11; $PYTHON is $found (set PYTHON=/path/to/python3.11 or newer)." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        echo "'$PYTHON -m venv' failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv)." >&2
        exit 1
    fi
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=23.1"
"$VENV/bin/python" -m pip install --quiet -e '.[test,lint]' -e ./devkit
echo "PagerBridge installed in $VENV ($("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
