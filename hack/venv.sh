#!/usr/bin/env bash
# Creates the project virtual environment ($VENV, default .venv) with $PYTHON and installs
# PagerBridge and its dev kit (editable) with their test and lint dependencies into it.
# Nothing goes into the system interpreter, so a distribution's externally managed Python
# (Debian 12, Ubuntu 24.04) works as it is. Called by `make install`, which re-runs it only
# when pyproject.toml, the dev kit's or the lock changes.
#
# Every package comes from requirements/dev.lock, exact versions with their sha256
# (`pip --require-hashes`; `make lock` regenerates it), as the image comes from
# runtime.lock: what CI and developers run is what was reviewed. Our own two projects are
# then installed editable without dependencies and without build isolation (their build
# backend, setuptools, is in the lock too), and `pip check` proves the lock was complete.
# The venv's own pip is used as it is: no unpinned upgrade.
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
LOCK=requirements/dev.lock
# --no-deps, as the Dockerfile: the lock is the whole set (pip's own resolution trips over
# extras in hash-checking mode, e.g. lightkube's httpx[http2]); pip check proves it whole.
"$VENV/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: --no-deps \
    -r "$LOCK"
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . -e ./devkit
if ! problems="$("$VENV/bin/python" -m pip check 2>&1)"; then
    echo "$LOCK is incomplete (run 'make lock'): $(echo "$problems" | head -3 | tr '\n' ' ')" >&2
    exit 1
fi
echo "PagerBridge installed in $VENV ($("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
