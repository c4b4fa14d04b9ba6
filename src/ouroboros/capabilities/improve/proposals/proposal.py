"""Proposals as git-tracked markdown in the seed's format, and their status machine.

The markdown file is the proposal: :func:`render` writes it from the category's
template and :func:`parse` reads it back (``parse(render(p)) == p``), so a human may
read, diff and even edit proposals with ordinary tools. Every status change is a
commit in the proposals repository; the caller adds the matching ledger event.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from ouroboros.capabilities.improve.proposals.repo import proposal_branch
from ouroboros.capabilities.llm.untrusted import printable
from ouroboros.storage.files import UnsafeFile, read_bounded

Status = Literal["pending", "approved", "rejected", "blocked", "implemented", "failed", "reverted",
                 "revert_failed"]
Category = Literal["bugfix", "optimization", "enhancement"]
Severity = Literal["critical", "high", "medium", "low"]
STATUSES: tuple[str, ...] = get_args(Status)
CATEGORIES: tuple[str, ...] = get_args(Category)
SEVERITIES: tuple[str, ...] = get_args(Severity)

#: pending -> approved | rejected (human) | blocked (a gate); approved -> implemented
#: (merged) | failed (merge failed); implemented -> reverted (monitor or human) |
#: revert_failed (the automatic revert's git step failed: the change is still merged);
#: revert_failed -> reverted (a human's kernel rollback, once main allows the revert).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"approved", "rejected", "blocked"}),
    "approved": frozenset({"implemented", "failed"}),
    "implemented": frozenset({"reverted", "revert_failed"}),
    "revert_failed": frozenset({"reverted"}),
}
OPEN_STATUSES = frozenset({"pending", "approved"})

TEMPLATES = Path(__file__).parent / "templates"
_NONE = "-"


class ProposalError(ValueError):
    """A proposal is malformed, missing, or asked for a transition it cannot make."""


class UnreadableState(ProposalError):
    """A file of the loop's own state (a proposal's markdown, ``breakers.json``,
    ``monitor.json``, ``notifications.json``, ``pulls.json``) is not what the loop wrote:
    an integrity problem of the workspace, never silently reset (a reset breaker would
    lift a halt, a lost window would skip the monitoring)."""


_T = TypeVar("_T")

#: The most of a state file read back (the loop writes a few KiB: one entry a proposal).
MAX_STATE = 16 << 20


def read_state(path: Path, build: Callable[[Any], _T]) -> _T:
    """``build`` applied to the JSON in ``path``: a regular file of at most `MAX_STATE`
    bytes (a link, FIFO or device planted there is refused, never followed or waited on).

    Raises:
        UnreadableState: the file is missing, cannot be read, is not JSON, or has another
            shape.
    """
    try:
        data = read_bounded(path, MAX_STATE)
        if data is None:
            raise FileNotFoundError(2, "no such file")
        return build(json.loads(data.decode("utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError,
            RecursionError) as e:
        if isinstance(e, UnsafeFile):  # a link, FIFO, device, folder or huge: it names it
            raise UnreadableState(str(e)) from None
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise UnreadableState(f"{path} is unreadable: {why}") from None


def read_state_or(path: Path, build: Callable[[Any], _T], empty: Callable[[], _T]) -> _T:
    """`read_state`, or ``empty()`` when nothing at all is at ``path`` (the loop has not
    written it yet). A dangling link is something: `Path.exists` follows links and would
    call it absent, and starting from empty state lifts a halt or drops a window."""
    if not os.path.lexists(path):
        return empty()
    return read_state(path, build)


@dataclass(frozen=True)
class Review:
    reviewer: str
    at: datetime
    decision: str
    notes: str = ""


@dataclass(frozen=True)
class Proposal:
    id: str
    title: str
    created: datetime
    category: Category
    severity: Severity
    problem: str
    evidence: tuple[str, ...]
    root_cause: str
    solution: str
    diff: str
    affected_files: tuple[str, ...]
    risk: str
    base_commit: str
    status: Status = "pending"
    author: str = "EvalAgent"
    key: str = _NONE
    branch: str = _NONE
    patch_hash: str = _NONE
    merge_commit: str = _NONE
    checklist: tuple[tuple[bool, str], ...] = (
        (False, "yamllint passes"),
        (False, "JSON schema valid (if applicable)"),
        (False, "Policy tests pass"),
        (False, "No forbidden paths modified"),
    )
    review: Review | None = None
    log: tuple[str, ...] = field(default_factory=tuple)

    @property
    def slug(self) -> str:
        return slugify(self.title)

    @property
    def relpath(self) -> str:
        return f"{self.created:%Y/%m}/{self.id}-{self.slug}.md"

    def transition(self, to: str) -> Proposal:
        if to not in TRANSITIONS.get(self.status, frozenset()):
            allowed = ", ".join(sorted(TRANSITIONS.get(self.status, ()))) or "none"
            raise ProposalError(
                f"proposal {self.id} is {self.status}; cannot become {to} (allowed: {allowed})"
            )
        return replace(self, status=to)  # type: ignore[arg-type]

    def logged(self, at: datetime, line: str) -> Proposal:
        return replace(self, log=(*self.log, f"{iso(at)} {line}"))


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:48].rstrip("-") or "proposal"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise ProposalError(f"bad timestamp {text!r}: expected YYYY-MM-DDTHH:MM:SSZ") from e


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items) or _NONE


def markdown_line(text: str) -> str:
    """One line of markdown-safe text (titles, evidence items, file names); control and
    format characters (terminal escapes, NUL, bidi overrides, zero-width) are dropped."""
    return " ".join(printable(text).split()) or "-"


def markdown_block(text: str) -> str:
    """A paragraph that cannot open a markdown section of its own (keeps parse exact), with
    no control or format characters but its line breaks."""
    lines = [(" " + line if line.lstrip() != line or line.startswith(("#", "---", "- [", "**"))
              else line) for line in printable(text).strip().splitlines()]
    return "\n".join(line.rstrip() for line in lines if line.strip()) or "-"


def render(p: Proposal) -> str:
    """The proposal's markdown, from its category's template."""
    template = string.Template((TEMPLATES / f"{p.category}.md").read_text(encoding="utf-8"))
    review = p.review
    return template.substitute(
        title=p.title,
        id=p.id,
        created=iso(p.created),
        status=p.status,
        category=p.category,
        severity=p.severity,
        author=p.author,
        base_commit=p.base_commit,
        branch=p.branch,
        patch_hash=p.patch_hash,
        merge_commit=p.merge_commit,
        key=p.key,
        problem=p.problem,
        evidence=_bullets(p.evidence),
        root_cause=p.root_cause,
        solution=p.solution,
        diff=p.diff.rstrip("\n"),
        affected_files=_bullets([f"`{f}`" for f in p.affected_files]),
        risk=p.risk,
        rollback=f"git revert -m 1 {p.merge_commit}" if p.merge_commit != _NONE
        else f"git revert -m 1 <merge commit of {p.branch}>",
        checklist="\n".join(f"- [{'x' if done else ' '}] {item}" for done, item in p.checklist),
        reviewer=review.reviewer if review else _NONE,
        reviewed_at=iso(review.at) if review else _NONE,
        decision=review.decision if review else _NONE,
        notes=(review.notes or _NONE) if review else _NONE,
        log=_bullets(p.log) if p.log else "_Populated after implementation._",
    )


_FIELD = re.compile(r"^\*\*(?P<k>[A-Za-z ]+)\*\*: ?(?P<v>.*)$", re.M)
_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _body(section: str) -> str:
    return _COMMENT.sub("", section).split("\n---\n")[0].strip()


def _unbullet(section: str) -> tuple[str, ...]:
    body = _body(section)
    if body in (_NONE, "_Populated after implementation._"):
        return ()
    return tuple(line[2:] for line in body.splitlines() if line.startswith("- "))


def _fenced(section: str, lang: str) -> str:
    m = re.search(rf"```{lang}\n(.*)\n```", section, re.S)
    if not m:
        raise ProposalError(f"missing ```{lang} block")
    return m.group(1) + "\n"


def parse(text: str) -> Proposal:
    """Read a proposal back from its markdown.

    Raises:
        ProposalError: a required field or section is missing or invalid.
    """
    title = re.search(r"^# Proposal: (.+)$", text, re.M)
    if not title:
        raise ProposalError("not a proposal: no '# Proposal: <title>' heading")
    fields = {m.group("k"): m.group("v").strip() for m in _FIELD.finditer(text)}
    secs = _sections(text)
    try:
        status, category, severity = fields["Status"], fields["Category"], fields["Severity"]
        if status not in STATUSES or category not in CATEGORIES or severity not in SEVERITIES:
            raise ProposalError(f"bad status/category/severity: {status}/{category}/{severity}")
        review = None
        if fields.get("Decision", _NONE) != _NONE:
            notes = fields.get("Notes", _NONE)
            review = Review(fields["Reviewed by"], parse_time(fields["Reviewed at"]),
                            fields["Decision"], "" if notes == _NONE else notes)
        _check_refs(fields["ID"], fields.get("Branch", _NONE), fields.get("Merge commit", _NONE))
        checklist = tuple(
            (m.group(1) == "x", m.group(2))
            for m in re.finditer(r"^- \[( |x)\] (.+)$", secs["Validation Checklist"], re.M)
        )
        return Proposal(
            id=fields["ID"],
            title=title.group(1).strip(),
            created=parse_time(fields["Created"]),
            status=status,  # type: ignore[arg-type]
            category=category,  # type: ignore[arg-type]
            severity=severity,  # type: ignore[arg-type]
            author=fields["Author"],
            base_commit=fields["Base commit"],
            branch=fields.get("Branch", _NONE),
            patch_hash=fields.get("Patch", _NONE),
            merge_commit=fields.get("Merge commit", _NONE),
            key=fields.get("Finding", _NONE),
            problem=_body(secs["Problem Statement"]),
            evidence=_unbullet(secs["Evidence"]),
            root_cause=_body(secs["Root Cause Analysis"]),
            solution=_body(secs["Proposed Solution"]),
            diff=_fenced(secs["Unified Diff"], "diff"),
            affected_files=tuple(f.strip("`") for f in _unbullet(secs["Affected Files"])),
            risk=_body(secs["Risk Assessment"]),
            checklist=checklist,
            review=review,
            log=_unbullet(secs["Implementation Log"]),
        )
    except KeyError as e:
        raise ProposalError(f"proposal is missing {e.args[0]!r}") from e


_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}\Z")
_COMMIT = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")


def _check_refs(pid: str, branch: str, merge_commit: str) -> None:
    """The fields the loop acts on with git (file names, branches deleted here and on the
    remote, the branch watched for a merge, the commit reverted) must be the proposal's own:
    an edited file must not aim them at ``main``, another branch, or an option."""
    if not _ID.match(pid):
        raise ProposalError(f"ID {pid!r} is not a proposal id")
    if branch not in (_NONE, proposal_branch(pid)):
        raise ProposalError(f"Branch {branch!r} is not this proposal's ({proposal_branch(pid)})")
    if branch != _NONE and merge_commit != _NONE and not _COMMIT.match(merge_commit):
        raise ProposalError(f"Merge commit {merge_commit!r} is not a commit id")


def render_index(proposals: Sequence[Proposal]) -> str:
    """The auto-generated ``index.md``: newest first, grouped by status."""
    lines = ["# Proposals", "", "_Auto-generated by Ouroboros; do not edit._", ""]
    counts = {s: sum(p.status == s for p in proposals) for s in STATUSES}
    lines.append(" · ".join(f"{s}: {n}" for s, n in counts.items() if n) or "No proposals yet.")
    lines += ["", "| ID | Created | Status | Category | Severity | Title |", "|---|---|---|---|---|---|"]
    for p in sorted(proposals, key=lambda p: (p.created, p.id), reverse=True):
        lines.append(f"| [{p.id}]({p.relpath}) | {iso(p.created)} | {p.status} | {p.category} "
                     f"| {p.severity} | {p.title} |")
    return "\n".join(lines) + "\n"


def to_dict(p: Proposal) -> dict[str, object]:
    """JSON-ready form (for ``--json`` and the HTTP API)."""
    review = p.review
    return {
        "id": p.id, "title": p.title, "created": iso(p.created), "status": p.status,
        "category": p.category, "severity": p.severity, "author": p.author, "key": p.key,
        "base_commit": p.base_commit, "branch": p.branch, "patch_hash": p.patch_hash,
        "merge_commit": p.merge_commit, "path": p.relpath, "problem": p.problem,
        "evidence": list(p.evidence), "root_cause": p.root_cause, "solution": p.solution,
        "diff": p.diff, "affected_files": list(p.affected_files), "risk": p.risk,
        "checklist": [{"done": done, "item": item} for done, item in p.checklist],
        "review": None if review is None else {
            "reviewer": review.reviewer, "at": iso(review.at), "decision": review.decision,
            "notes": review.notes},
        "log": list(p.log),
    }
