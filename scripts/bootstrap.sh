#!/usr/bin/env bash
# Creates the virtual environment and installs the project with its dev tools.
# Everything comes from PyPI packages; no toolchain is downloaded at run time.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# pip warns once per package about an extra index folder that a machine's pip config names
# but does not have; that says nothing about this project, so set-up stays quiet about it.
quiet_pip() {
    "$venv/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory.$" >&2)
}
quiet_pip install -q --disable-pip-version-check --upgrade pip
quiet_pip install -q --disable-pip-version-check -e '.[dev]'
