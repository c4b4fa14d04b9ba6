"""User fitness functions for `ouro evolve params|routing`: a command or `module:function`.

Both receive the candidate as a JSON object and return one number, higher is better:

- a **command** (`--fitness "python3 score.py"`) gets the candidate as JSON on stdin and
  prints the score as the last line of stdout; it runs without a shell, with a timeout;
- a **function** (`--fitness mypkg.scoring:score`) is imported and called with the
  candidate as a dict.

A candidate that the function cannot score (a crash, a non-number, a timeout, NaN) scores
0, and the number of such failures is kept, so a search does not stall on one bad point;
the starting candidate must score, or the run stops with a usage error. Both forms are
picklable, so candidates can be scored in worker processes.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ouroboros.kernel.errors import UsageError

_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
TIMEOUT_S = 30.0


class FitnessFailed(Exception):
    """The fitness function could not score a candidate; the message says why."""


@dataclass(frozen=True)
class FitnessCommand:
    argv: tuple[str, ...]
    timeout_s: float = TIMEOUT_S

    def __call__(self, candidate: Mapping[str, Any]) -> float:
        try:
            done = subprocess.run(self.argv, input=json.dumps(candidate), capture_output=True,
                                  text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise FitnessFailed(f"timed out after {self.timeout_s:g} s") from exc
        except OSError as exc:
            raise FitnessFailed(f"cannot run {self.argv[0]}: {exc.strerror}") from exc
        if done.returncode != 0:
            raise FitnessFailed(f"exit {done.returncode}: {done.stderr.strip()[-200:]}")
        lines = done.stdout.strip().splitlines()
        return _number(lines[-1] if lines else "")


@dataclass(frozen=True)
class FitnessFunction:
    spec: str  # module:function

    def __call__(self, candidate: Mapping[str, Any]) -> float:
        module, name = self.spec.split(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise FitnessFailed(f"cannot import {self.spec}: {exc}") from exc
        try:
            return _number(fn(dict(candidate)))
        except FitnessFailed:
            raise
        except Exception as exc:  # the user's function failed: this candidate scores 0
            raise FitnessFailed(f"{type(exc).__name__}: {exc}") from exc


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise FitnessFailed(f"not a number: {str(value)[:80]!r}") from exc
    if not math.isfinite(number):
        raise FitnessFailed(f"not a finite number: {number}")
    return number


Fitness = Callable[[Mapping[str, Any]], float]


def parse_fitness(text: str) -> FitnessCommand | FitnessFunction:
    """`module:function` when it looks like one, else a command line (no shell)."""
    text = text.strip()
    if not text:
        raise UsageError("--fitness is empty", "give a command or module:function")
    if _FUNCTION.match(text):
        return FitnessFunction(text)
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"--fitness is not a valid command line: {exc}") from exc
    return FitnessCommand(argv)
