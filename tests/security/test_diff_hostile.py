"""Hostile proposal diffs: each is blocked (at the audit gate unless noted) and nothing of
it is merged — no branch left, ``main`` unmoved, the rejection in the ledger.

Most diffs are made the way an attacker would make them, with real git in a clone of
the target repository (``git diff --binary -M -C --find-copies-harder``), so git itself
quotes the names; a few are written by hand to use quoting git accepts but never writes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from improve.loopkit import Harness
from ouroboros.capabilities.improve.proposals.diffs import (
    declared_paths,
    parse_diff,
    unquote_git_path,
)
from ouroboros.capabilities.improve.proposals.policy import PolicyConfig, forbidden_path_reasons

Edit = Callable[[Path], None]


def _git(cwd: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], input=data, capture_output=True,
                          check=True)
    return proc.stdout.decode("utf-8", "surrogateescape")


def made_with_git(h: Harness, tmp: Path, edit: Edit) -> str:
    """The diff an attacker gets by editing a clone of the target and running git."""
    work = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(h.loop.repo.path), str(work)], check=True)
    edit(work)
    _git(work, "add", "-A")
    return _git(work, "-c", "core.quotePath=true", "diff", "--cached", "--binary", "-M", "-C",
                "--find-copies-harder", "HEAD")


def _write(rel: str, text: str | bytes) -> Edit:
    def edit(work: Path) -> None:
        path = work / os.fsdecode(rel.encode("utf-8", "surrogateescape"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return edit


def _mv(src: str, dst: str) -> Edit:
    def edit(work: Path) -> None:
        (work / dst).parent.mkdir(parents=True, exist_ok=True)
        _git(work, "mv", src, dst)
    return edit


def _cp(src: str, dst: str) -> Edit:
    def edit(work: Path) -> None:
        (work / dst).parent.mkdir(parents=True, exist_ok=True)
        (work / dst).write_bytes((work / src).read_bytes())
    return edit


def _chmod(rel: str, mode: int) -> Edit:
    return lambda work: os.chmod(work / rel, mode)


def _rm(rel: str) -> Edit:
    return lambda work: (work / rel).unlink()


def _symlink(rel: str, to: str) -> Edit:
    return lambda work: os.symlink(to, work / rel)


def _both(*edits: Edit) -> Edit:
    def edit(work: Path) -> None:
        for e in edits:
            e(work)
    return edit


@dataclass(frozen=True)
class Hostile:
    id: str
    edit: Edit | None
    reason: str
    stage: str = "audit"
    text: str = ""  # a hand-written diff instead of an edit


GATE = "gate, test or ledger code is a forbidden target"
CONTRACT = "SYSTEM_CONTRACT.md must never be modified"
FORBIDDEN = "forbidden path modified"

_HAND_OCTAL_ASCII = (  # git accepts octal escapes for any byte; "\164ests" is "tests"
    'diff --git "a/\\164ests/evil.py" "b/\\164ests/evil.py"\n'
    "new file mode 100644\n"
    "--- /dev/null\n"
    '+++ "b/\\164ests/evil.py"\n'
    "@@ -0,0 +1 @@\n"
    "+assert True\n"
)
_HAND_OTHER_PREFIX = (  # git apply strips one component (-p1), whatever its name
    "diff --git x/tests/evil.py y/tests/evil.py\n"
    "new file mode 100644\n"
    "--- /dev/null\n"
    "+++ y/tests/evil.py\n"
    "@@ -0,0 +1 @@\n"
    "+assert True\n"
)

HOSTILE: list[Hostile] = [
    Hostile("non-ascii-name-in-policy", _write("policy/ällow.rego", "package x\n"), GATE),
    Hostile("non-ascii-test-file", _write("tests/tëst_ok.py", "assert True\n"), GATE),
    Hostile("decomposed-accent-name", _write("tests/a\u0308.py", "x = 1\n"), GATE),
    Hostile("non-ascii-workflow", _write(".github/workflows/évil.yml", "on: push\n"), FORBIDDEN),
    Hostile("non-ascii-env-file", _write(".env.prodé", "KEY=1\n"), FORBIDDEN),
    Hostile("tab-in-name", _write("tests/tab\tname.py", "x = 1\n"), GATE),
    Hostile("non-utf8-name", _write("tests/\udcff.py", "x = 1\n"), GATE),
    Hostile("rename-out-of-tests", _mv("tests/test_policy.py", "docs/moved.py"), GATE),
    Hostile("rename-into-tests", _mv("docs/runbook.md", "tests/runbook.md"), GATE),
    Hostile("rename-into-non-ascii-policy", _mv("docs/README.md", "policy/rèadme.md"), GATE),
    Hostile("rename-contract-away", _mv("SYSTEM_CONTRACT.md", "docs/contract.md"), CONTRACT),
    Hostile("copy-from-tests", _cp("tests/test_policy.py", "docs/copy_of_policy.py"), GATE),
    Hostile("copy-into-github", _cp("docs/README.md", ".github/README.md"), FORBIDDEN),
    Hostile("mode-change-on-test", _chmod("tests/test_policy.py", 0o755), GATE),
    Hostile("mode-change-on-contract", _chmod("SYSTEM_CONTRACT.md", 0o755), CONTRACT),
    Hostile("binary-into-tests", _write("tests/blob.bin", b"\x00\x01\x02binary"), GATE),
    Hostile("binary-non-ascii-name", _write("policy/blöb.bin", b"\x00\xffbinary"), GATE),
    Hostile("delete-test", _rm("tests/test_policy.py"), GATE),
    Hostile("delete-contract", _rm("SYSTEM_CONTRACT.md"), CONTRACT),
    Hostile("symlink-to-contract", _symlink("docs/contract.md", "../SYSTEM_CONTRACT.md"),
            "symbolic links are not allowed"),
    Hostile("upper-case-dir", _write("Tests/notes.md", "notes\n"), GATE),
    Hostile("benign-then-quoted-forbidden",
            _both(_write("docs/notes.md", "notes\n"), _write("policy/ü.rego", "package x\n")),
            GATE),
    Hostile("grant-in-non-ascii-yaml",
            _write("agents-é.yaml", "agents:\n  X:\n    extensions: [run_python]\n"),
            "granted new extensions: run_python"),
    Hostile("url-in-non-ascii-markdown",
            _write("docs/rünbook.md", "See https://example.com)@collector.evil.example/x\n"),
            "new external URL requires approval: collector.evil.example"),
    Hostile("octal-escaped-ascii-header", None, GATE, text=_HAND_OCTAL_ASCII),
    Hostile("other-prefix-header", None, GATE, text=_HAND_OTHER_PREFIX),
    Hostile("broken-yaml-with-non-ascii-name", _write("cönfig.yaml", "a: [unclosed\n"),
            "yamllint", stage="test"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c.id for c in HOSTILE])
def test_hostile_diff_is_blocked_and_nothing_is_merged(tmp_path: Path, case: Hostile) -> None:
    h = Harness(tmp_path)
    repo = h.loop.repo
    head, tree = repo.head(), repo.rev("main^{tree}")
    diff = case.text or made_with_git(h, tmp_path, case.edit)  # type: ignore[arg-type]
    assert diff.strip()
    out = h.loop.propose(h.raw_draft(diff, ("x",)))
    assert out is not None
    assert out.proposal.status == "blocked", out.message
    assert out.gate is not None and out.gate.stage == case.stage, out.message
    assert case.reason in out.proposal.review.notes, out.proposal.review.notes
    rejected = h.governance.events("PatchRejected")
    assert rejected and rejected[-1]["payload"]["stage"] == case.stage
    assert not h.governance.is_applied(out.proposal.patch_hash)
    # nothing merged: no branch left, main and its tree unmoved, no new commit anywhere
    assert repo.branches() == ["main"]
    assert (repo.head(), repo.rev("main^{tree}")) == (head, tree)
    assert _git(repo.path, "status", "--porcelain") == ""


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(HOSTILE) >= 20
    assert len({c.id for c in HOSTILE}) == len(HOSTILE)


# -- the readers, directly ------------------------------------------------------------

def test_git_quoted_names_are_decoded_and_normalised_in_parse_diff(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    diff = made_with_git(h, tmp_path, _both(_write("policy/ällow.rego", "package x\n"),
                                            _mv("docs/README.md", "docs/rèadme.md")))
    assert '"b/policy/\\303\\244llow.rego"' in diff  # git really quoted it
    paths = {p for c in parse_diff(diff) for p in c.paths}
    assert {"policy/ällow.rego", "docs/README.md", "docs/rèadme.md"} <= paths
    assert {"policy/ällow.rego", "docs/README.md", "docs/rèadme.md"} <= declared_paths(diff)


def test_hunk_bodies_are_not_read_as_headers() -> None:
    diff = ("diff --git a/docs/x.md b/docs/x.md\n--- a/docs/x.md\n+++ b/docs/x.md\n"
            "@@ -1,2 +1,2 @@\n--- a/tests/not_a_header.py\n+++ b/tests/nor_this.py\n"
            " context\n")
    assert declared_paths(diff) == {"a/docs/x.md", "b/docs/x.md", "docs/x.md",
                                    "a/docs/x.md b/docs/x.md", "docs/x.md b/docs/x.md"}


def _git_quote(path: str) -> str:
    """git's quote_c_style (core.quotePath=true), written from its documentation."""
    named = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}
    raw = path.encode("utf-8", "surrogateescape")
    if not any(b < 0x20 or b >= 0x7F or b in (34, 92) for b in raw):
        return path
    out = []
    for b in raw:
        if b in named:
            out.append("\\" + named[b])
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_unquoting_inverts_gits_quoting(path: str) -> None:
    assert unquote_git_path(_git_quote(path)) == path


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["tests/", "policy/", ".github/"]),
       st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFF,
                                      exclude_categories=("Cs",)), min_size=1, max_size=8))
def test_a_quoted_name_under_a_forbidden_directory_is_always_forbidden(
        top: str, name: str) -> None:
    quoted = _git_quote(top + name + ".txt")
    diff = (f"diff --git {_git_quote('a/' + top + name + '.txt')} "
            f"{_git_quote('b/' + top + name + '.txt')}\nnew file mode 100644\n"
            f"--- /dev/null\n+++ {_git_quote('b/' + top + name + '.txt')}\n@@ -0,0 +1 @@\n+x\n")
    assert quoted.startswith('"')
    changes = parse_diff(diff)
    assert forbidden_path_reasons(changes, PolicyConfig(), declared_paths(diff))
