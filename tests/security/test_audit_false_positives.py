"""The false-positive check: on the project's own prose (README, docs, the example
deployment's texts), the folded marker matcher flags nothing the plain lower-case
substring test would not — the normalisation adds recall, not false alarms."""

from __future__ import annotations

from pathlib import Path

from ouroboros.kernel.audit import DEFAULT_AUDIT_CONFIG
from ouroboros.kernel.markers import find_markers

ROOT = Path(__file__).resolve().parents[2]
MARKERS: list[str] = DEFAULT_AUDIT_CONFIG["injection_markers"]


def prose() -> list[str]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "examples").rglob("*.md")), *sorted((ROOT / "examples").rglob("*.yaml"))]
    paragraphs = []
    for f in files:
        if f.name == "security.md":  # it quotes the attacks on purpose
            continue
        paragraphs += [p for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return paragraphs


def test_folding_adds_no_false_positive_on_the_projects_prose() -> None:
    paragraphs = prose()
    assert len(paragraphs) >= 300
    extra = []
    for p in paragraphs:
        plain = {m for m in MARKERS if m.lower() in p.lower()}
        folded = {h.marker for h in find_markers([p], MARKERS)}
        if folded - plain:
            extra.append((sorted(folded - plain), p[:120]))
    assert extra == []
