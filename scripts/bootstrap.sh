#!/usr/bin/env bash
# Creates the virtual environment and installs the project with its dev tools.
# Everything comes from PyPI packages; no toolchain is downloaded at run time.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
# PyICU (the audit gate's TR39 confusables skeleton) builds against the system ICU.
if command -v dpkg >/dev/null && ! dpkg -s libicu-dev pkg-config g++ >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q libicu-dev pkg-config g++
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
