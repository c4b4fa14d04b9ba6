"""The chat-command grammar (``proposals approve <id>`` …) for chat bots.

Parsing is separate from doing: :func:`parse_command` turns a message into a
:class:`ChatCommand` or a :class:`ChatError` that says the right usage, and
:func:`handle_chat` runs it against the loop and answers with text.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ouroboros.capabilities.improve.proposals.proposal import STATUSES, ProposalError

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop

Action = Literal["list", "show", "approve", "reject", "apply", "status", "reset", "help"]

USAGE = """\
proposals list [pending|approved|rejected|blocked|implemented|failed|reverted|all]
proposals show <id>
proposals approve <id>
proposals reject <id> <reason>
proposals status
proposals reset
proposals help"""


class ChatError(ValueError):
    """A message that looks like a proposals command but is not a valid one."""


@dataclass(frozen=True)
class ChatCommand:
    action: Action
    proposal_id: str | None = None
    reason: str | None = None
    status: str | None = None


def parse_command(text: str) -> ChatCommand | None:
    """The command in ``text``, or None when the message is not addressed to proposals.

    Raises:
        ChatError: a ``proposals …`` message with a bad verb or missing arguments.
    """
    try:
        words = shlex.split(text.strip())
    except ValueError:
        words = text.strip().split()
    if words and words[0].startswith("/"):
        words[0] = words[0][1:]
    if not words or words[0].lower() not in ("proposals", "proposal"):
        return None
    if len(words) == 1:
        return ChatCommand("help")
    verb, args = words[1].lower(), words[2:]
    if verb == "list":
        status = args[0].lower() if args else "pending"
        if status not in (*STATUSES, "all"):
            raise ChatError(f"unknown status {status!r}; usage: proposals list [status|all]")
        return ChatCommand("list", status=status)
    if verb in ("show", "approve", "apply"):
        if len(args) != 1:
            raise ChatError(f"usage: proposals {verb} <id>")
        return ChatCommand(verb, proposal_id=args[0])  # type: ignore[arg-type]
    if verb == "reject":
        if len(args) < 2:
            raise ChatError("usage: proposals reject <id> <reason> (a reason is required)")
        return ChatCommand("reject", proposal_id=args[0], reason=" ".join(args[1:]))
    if verb in ("status", "reset", "help") and not args:
        return ChatCommand(verb)  # type: ignore[arg-type]
    raise ChatError(f"unknown command {' '.join(words[1:2])!r}; try:\n{USAGE}")


def handle_chat(text: str, loop: ImproveLoop, user: str = "chat") -> str | None:
    """Run a chat message against the loop; None when it is not a proposals command."""
    try:
        command = parse_command(text)
    except ChatError as e:
        return str(e)
    if command is None:
        return None
    try:
        return _run(command, loop, user)
    except ProposalError as e:
        return str(e)


def _run(command: ChatCommand, loop: ImproveLoop, user: str) -> str:
    if command.action == "help":
        return USAGE
    if command.action == "list":
        status = None if command.status == "all" else command.status
        items = loop.proposals(status)
        if not items:
            return f"No {command.status} proposals."
        return "\n".join(f"{p.id} [{p.status}] {p.severity} {p.category}: {p.title}"
                         for p in items)
    if command.action == "status":
        state = loop.breakers.as_dict()
        return "\n".join(f"{k}: {v}" for k, v in state.items())
    if command.action == "reset":
        loop.reset(user)
        return "Breakers reset; proposals resume."
    assert command.proposal_id is not None
    if command.action == "show":
        p = loop.get(command.proposal_id)
        return f"{p.title} ({p.id}, {p.status}, {p.severity})\n{p.problem}\n```diff\n{p.diff}```"
    if command.action == "approve":
        result = loop.approve(command.proposal_id, reviewer=user)
        return f"Proposal {result.proposal.id} is {result.proposal.status}. {result.message}"
    if command.action == "apply":
        result = loop.apply(command.proposal_id)
        return f"Proposal {result.proposal.id} is {result.proposal.status}. {result.message}"
    assert command.reason is not None
    result = loop.reject(command.proposal_id, command.reason, reviewer=user)
    return f"Proposal {result.proposal.id} rejected. {result.message}"
