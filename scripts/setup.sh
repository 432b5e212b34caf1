#!/usr/bin/env bash
# Create .venv and install everything the dashboard (mode "run") or the test
# suite (mode "test") needs, system packages included. Idempotent: a second run
# with unchanged requirements only checks.
set -euo pipefail
mode="${1:-run}"
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
reqs=requirements.txt
[ "$mode" = test ] && reqs=requirements-dev.txt

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$mode"
want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing $reqs into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r "$reqs"
    echo "$want" > "$stamp"
fi
# the project itself, editable, so `python -m xai_core ...` (the dashboard's reproduce
# commands) and `import xai_core` work from any folder, not only from this one
root="$PWD"
installed="$(cd / && "$root/.venv/bin/python" -c \
    "import os, xai_core; print(os.path.dirname(os.path.dirname(xai_core.__file__)))" 2>/dev/null || true)"
if [ "$installed" != "$root" ]; then
    echo "==> installing this checkout into .venv (pip install -e .)"
    .venv/bin/python -m pip install --quiet --no-deps -e .
fi

# Debian packages, each checked on its own (a machine that has chromium may still
# lack the others): bubblewrap confines the model worker that runs uploaded models
# (README, Security; without it the worker falls back to Landlock, else to asking
# for trust); the tests drive Debian's chromium, and Quantus' OpenCV needs libGL.
debs="bubblewrap"
[ "$mode" = test ] && debs="$debs chromium fonts-dejavu-core libgl1 libglib2.0-0"
missing=""
for deb in $debs; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing="$missing $deb"
done
if [ -n "$missing" ]; then
    echo "==> installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; then
        [ "$mode" = test ] && { echo "error: could not install:$missing" >&2; exit 1; }
        echo "    (could not install$missing: uploaded models get Landlock or need explicit trust)"
    fi
fi
