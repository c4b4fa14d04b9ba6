"""Installed packages' versions without ``importlib.metadata`` on the run path.

``importlib.metadata`` imports the ``email`` parser and scans every ``sys.path`` entry:
10–20 ms of each ``ouro tool run``, whose compiled-module cache key needs wasmtime's
version. An installed wheel sits next to its ``<name>-<version>.dist-info`` folder, so
that folder's name is read instead; anything unusual (none or several such folders, an
egg, a zip) falls back to ``importlib.metadata``.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path


@functools.cache
def version(distribution: str, package_file: str) -> str:
    """The version of ``distribution`` whose package's ``__init__`` is ``package_file``."""
    site = Path(package_file).resolve().parent.parent
    wanted = _normal(distribution)
    try:  # `{name}-{version}.dist-info`, the name escaped so that it holds no '-'
        found = [version for name, _, version in
                 (e.name[:-len(".dist-info")].partition("-") for e in os.scandir(site)
                  if e.name.endswith(".dist-info"))
                 if _normal(name) == wanted and version]
    except OSError:
        found = []
    if len(found) == 1:
        return found[0]
    import importlib.metadata

    return importlib.metadata.version(distribution)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
