#!/usr/bin/env bash
# Creates the virtual environment and installs the project with its dev tools.
# Everything comes from PyPI packages; no toolchain is downloaded at run time.
# The one system package is bubblewrap (`bwrap`): every tool build runs in its jail.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
if ! command -v bwrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap >/dev/null
    else
        echo "warning: bubblewrap (bwrap) is missing and cannot be installed here; tool builds" \
             "will be refused until it is (or OURO_UNJAILED_BUILDS=1 is set)" >&2
    fi
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
