"""Where the loop meets the CLI and the kernel's registrars.

:func:`register` is the capability registrar (``CAPABILITY_REGISTRARS``): it registers
the ``file`` patch type on a runtime and nothing else, so opening a workspace for any
command costs nothing; the loop, with its repositories, is made on first use by the
type's gates or by :func:`loop_of`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

from ouroboros.capabilities.improve.proposals.forge import forge_from_settings
from ouroboros.capabilities.improve.proposals.governance import Governance
from ouroboros.capabilities.improve.proposals.loop import ImproveLoop
from ouroboros.capabilities.improve.proposals.notify import WebhookNotifier, notifier_from_env
from ouroboros.capabilities.improve.proposals.writer import LLMWriter
from ouroboros.capabilities.llm import LLMConfig, LLMError, OpenAICompatibleProvider
from ouroboros.kernel import Runtime, UsageError
from ouroboros.kernel.settings import Settings, load_settings

_LOOPS: WeakKeyDictionary[Runtime, ImproveLoop] = WeakKeyDictionary()


def attach(rt: Runtime, **kwargs: Any) -> ImproveLoop:
    """A loop on ``rt``'s workspace, with the ``file`` patch type bound to it."""
    loop = ImproveLoop(rt, **kwargs)
    _LOOPS[rt] = loop
    return loop


def loop_of(rt: Runtime, settings: Settings | None = None) -> ImproveLoop:
    """The loop attached to ``rt``, or a new one from the workspace's settings
    (``ouro.toml``): reading the workspace's telemetry store, writing with the configured
    writer, publishing to the configured forge, notifying through the webhook (or stderr).

    Raises:
        SettingsError: the settings (or the target repository's own config) are invalid.
    """
    loop = _LOOPS.get(rt)
    if loop is None:
        from ouroboros.capabilities.improve.intake.runtime import store_for

        settings = settings or load_settings(rt.home).settings
        store = store_for(rt)
        notifier = (WebhookNotifier(settings.notify.webhook_url) if settings.notify.webhook_url
                    else notifier_from_env(sys.stderr))
        loop = attach(rt, events=lambda since, until: store.events(since=since, until=until),
                      notifier=notifier, settings=settings.improve,
                      forge=forge_from_settings(settings.improve.forge),
                      trusted_sources=settings.telemetry.trusted_sources)
        if settings.improve.writer.kind == "llm":
            loop.writer = llm_writer(rt, settings)
    return loop


def llm_config(settings: Settings, env: Mapping[str, str] | None = None) -> LLMConfig:
    """The LLM client's configuration from ``[llm]`` (the key from its environment variable)."""
    env = os.environ if env is None else env
    llm = settings.llm
    return LLMConfig.resolve({"base_url": llm.base_url, "model": llm.model,
                              "api_key": env.get(llm.api_key_env), "timeout_s": llm.timeout_s,
                              "max_retries": llm.max_retries}, env)


def llm_writer(rt: Runtime, settings: Settings) -> LLMWriter:
    """The WriterAgent on the configured endpoint; every attempt is a ledger event.

    Raises:
        UsageError: no endpoint or model is configured.
    """
    try:
        provider = OpenAICompatibleProvider(llm_config(settings))
    except LLMError as e:
        raise UsageError(f"writer = \"llm\" needs an LLM endpoint: {e}",
                         "set [llm] base_url and model in ouro.toml (or OURO_LLM_BASE_URL / "
                         "OURO_LLM_MODEL)") from e
    return LLMWriter(provider, settings.improve.writer,
                     record=lambda attempt: _record(rt, "WriterAttempt", attempt),
                     store_blob=rt.blobs.put)


def _record(rt: Runtime, kind: str, payload: dict[str, Any]) -> None:
    rt.record(kind, payload)


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
    from ouroboros.capabilities.improve.intake.runtime import store_for
    from ouroboros.capabilities.improve.intake.spans import install

    install(store_for(rt))  # the runtime's own spans go to this workspace's telemetry
