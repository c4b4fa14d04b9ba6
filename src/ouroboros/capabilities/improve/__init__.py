"""The self-improvement loop: sanitized telemetry, analysis, proposals.

This package's telemetry half (events, sanitizer, store, analysis, LLM analyser,
synthetic generator) turns what agents did into :class:`Finding` values; the
proposal half turns findings into governed ``file`` patches.
"""

from ouroboros.capabilities.improve.analysis import Finding, Thresholds, analyse, error_rate

__all__ = ["Finding", "Thresholds", "analyse", "error_rate"]
