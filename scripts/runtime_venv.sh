#!/usr/bin/env bash
# Build (or reuse) .venv-runtime: a clean virtual environment with requirements.txt
# ONLY, what `make run` installs, so the README's and docs' examples are checked
# against the runtime pins and not the test ones (OpenCV came only with the dev
# requirements once, and the README's first example failed after `make run`).
# Keyed by the hash of requirements.txt and the Python version, as scripts/setup.sh
# keys .venv: a second run with both unchanged only checks (seconds). Prints the
# venv's python on its last line. The pip warnings about the index locations that
# this machine's pip configuration names go to a log (.venv-runtime/install.log).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
venv="${XAI_RUNTIME_VENV:-.venv-runtime}"
want="$( { cat requirements.txt; "$PYTHON" --version; } | sha256sum | cut -c1-16)"
stamp="$venv/.installed-runtime"

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> building $venv from requirements.txt only (first time: a few minutes)" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    log="$venv/install.log"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }
    "$venv/bin/python" -m pip install --quiet -r requirements.txt >>"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }
    # the project itself, as `make run` installs it (no dependencies of its own)
    "$venv/bin/python" -m pip install --quiet --no-deps -e . >>"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
