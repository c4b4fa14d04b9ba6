"""Analysis: sanitized telemetry in, :class:`Finding` values out.

- :mod:`.findings`: the types (``Finding``, ``Thresholds``) and shared helpers;
- :mod:`.aggregate`: one pass over events into :class:`Aggregate`, and ``error_rate``;
- :mod:`.rules`: the pure rules over an aggregate (``findings_of``, ``analyse``);
- :mod:`.llm`: the optional LLM analyser over the same aggregates;
- :mod:`.workspace`: the analysis over a workspace's telemetry store.
"""

from ouroboros.capabilities.improve.analysis.aggregate import Aggregate, aggregate, error_rate
from ouroboros.capabilities.improve.analysis.findings import (
    KINDS,
    SEVERITIES,
    TIMEOUT_CODES,
    Finding,
    Thresholds,
)
from ouroboros.capabilities.improve.analysis.rules import analyse, findings_of

__all__ = [
    "KINDS",
    "SEVERITIES",
    "TIMEOUT_CODES",
    "Aggregate",
    "Finding",
    "Thresholds",
    "aggregate",
    "analyse",
    "error_rate",
    "findings_of",
]
