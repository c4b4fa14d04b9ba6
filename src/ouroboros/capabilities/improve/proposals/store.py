"""The proposals repository: ``YYYY/MM/<id>-<slug>.md`` files, templates and ``index.md``.

A separate git repository from the target, so recording a status change never
touches the target's ``main``: that moves only when an approved proposal is merged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ouroboros.capabilities.improve.proposals.proposal import (
    TEMPLATES,
    Proposal,
    ProposalError,
    UnreadableState,
    parse,
    render,
    render_index,
)
from ouroboros.capabilities.improve.proposals.repo import TargetRepo, exclusive
from ouroboros.storage.files import read_text_file, replace_file

#: The most of a proposal file read: a rendered proposal is a few KiB of Markdown.
MAX_PROPOSAL = 16 << 20


class ProposalStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._git = TargetRepo(self.root)

    @classmethod
    def init(cls, root: Path) -> ProposalStore:
        store = cls(root)
        if (store.root / ".git").exists():
            return store
        (store.root / "templates").mkdir(parents=True, exist_ok=True)
        for template in TEMPLATES.glob("*.md"):
            shutil.copyfile(template, store.root / "templates" / template.name)
        (store.root / "index.md").write_text(render_index([]), encoding="utf-8")
        store._git.git("init", "-q", "-b", "main", action="init")
        store._git.git("add", "-A")
        store._git.git("commit", "-q", "-m", "proposals: templates and index", action="commit")
        return store

    def all(self) -> list[Proposal]:
        """Every proposal file, parsed.

        Raises:
            UnreadableState: a file there is not a readable proposal (named).
        """
        found = []
        for path in sorted(self.root.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/*.md")):
            name = path.relative_to(self.root)
            try:  # a link, FIFO or huge file is refused unread (its message names it)
                found.append(parse(read_text_file(path, MAX_PROPOSAL) or ""))
            except (OSError, ProposalError) as e:
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                raise UnreadableState(f"proposal file {name} is unreadable: {why}") from None
        return sorted(found, key=lambda p: (p.created, p.id))

    def get(self, ref: str) -> Proposal:
        """A proposal by id or unique id prefix.

        Raises:
            ProposalError: no proposal, or the prefix is ambiguous.
        """
        ref = ref.strip()
        if not ref:
            raise ProposalError("empty proposal id")
        matches = [p for p in self.all() if p.id.startswith(ref)]
        if not matches:
            raise ProposalError(f"no proposal {ref!r}; run `ouro proposals list`")
        exact = [p for p in matches if p.id == ref]
        if len(exact) == 1:
            return exact[0]
        if len(matches) > 1:
            ids = ", ".join(p.id for p in matches)
            raise ProposalError(f"proposal id {ref!r} is ambiguous ({ids}); give more characters")
        return matches[0]

    def exists(self, proposal_id: str) -> bool:
        return any(p.id == proposal_id for p in self.all())

    def save(self, proposal: Proposal, message: str) -> str:
        """Write the proposal and the index, commit both; returns the commit sha."""
        path = self.root / proposal.relpath
        with exclusive(self.root.with_name(f"{self.root.name}.lock")):  # one git index
            path.parent.mkdir(parents=True, exist_ok=True)
            # renamed over: a link planted under either name is replaced, not written through
            replace_file(path, render(proposal))
            replace_file(self.root / "index.md", render_index(self.all()))
            self._git.git("add", "-A", action="commit")
            self._git.git("commit", "-q", "-m", message, action="commit")
            return self._git.rev("HEAD")

    def history(self, proposal: Proposal) -> list[str]:
        out = self._git.git("log", "--format=%h %s", "--", proposal.relpath)
        return [line for line in out.splitlines() if line]
