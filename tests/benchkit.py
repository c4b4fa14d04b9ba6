"""A benchmark script under ``bench/`` loaded as a module, so tests call its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str, module_name: str | None = None) -> ModuleType:
    """``bench/<name>.py`` as module ``module_name`` (registered in ``sys.modules``, which
    dataclasses and pickling inside it need)."""
    spec = importlib.util.spec_from_file_location(module_name or name, BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
