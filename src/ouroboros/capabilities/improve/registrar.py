"""Where the loop meets the CLI and the kernel's registrars.

:func:`register` is the capability registrar (``CAPABILITY_REGISTRARS``): it registers
the ``file`` patch type on a runtime and nothing else, so opening a workspace for any
command costs nothing; the loop, with its repositories, is made on first use by the
type's gates or by :func:`loop_of`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

from ouroboros.capabilities.improve.proposals.governance import Governance
from ouroboros.capabilities.improve.proposals.loop import ImproveLoop
from ouroboros.capabilities.improve.proposals.notify import notifier_from_env
from ouroboros.kernel import Runtime

_LOOPS: WeakKeyDictionary[Runtime, ImproveLoop] = WeakKeyDictionary()


def attach(rt: Runtime, **kwargs: Any) -> ImproveLoop:
    """A loop on ``rt``'s workspace, with the ``file`` patch type bound to it."""
    loop = ImproveLoop(rt, **kwargs)
    _LOOPS[rt] = loop
    return loop


def loop_of(rt: Runtime) -> ImproveLoop:
    """The loop attached to ``rt``, or a new one reading the workspace's telemetry store
    and notifying through ``OURO_WEBHOOK_URL`` (or stderr)."""
    loop = _LOOPS.get(rt)
    if loop is None:
        from ouroboros.capabilities.improve.intake.runtime import store_for

        store = store_for(rt)
        loop = attach(rt, events=lambda since, until: store.events(since=since, until=until),
                      notifier=notifier_from_env(sys.stderr))
    return loop


class _LazyGates:
    """The ``file`` type's gates before any loop exists: the loop (and its repositories)
    is made on first use, so registering costs nothing for commands that never touch it."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def test(self, value: Mapping[str, Any]) -> tuple[bool, str]:
        return loop_of(self._rt).test(value)

    def audit(self, value: Mapping[str, Any]) -> list[str]:
        return loop_of(self._rt).audit(value)

    def effect(self, value: Mapping[str, Any]) -> None:
        loop_of(self._rt).effect(value)

    def rolled_back(self, proposal_id: str) -> None:
        loop_of(self._rt).rolled_back(proposal_id)


def register(rt: Runtime) -> None:
    """Register the ``file`` patch type on ``rt`` (for the CLI's capability registrars),
    so ``ouro approve <patch>`` runs its gates and merges."""
    if rt not in _LOOPS:
        Governance(rt).bind(_LazyGates(rt))
