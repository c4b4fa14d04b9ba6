"""The generic evolution engine: genomes, operators, selection, rollback, trust, trend."""

from ouroboros.capabilities.evolve.engine import (
    EvolutionPolicy,
    EvolutionRecord,
    Evolver,
    Problem,
    TrustGateClosed,
)
from ouroboros.capabilities.evolve.trend import Trend, classify

__all__ = [
    "EvolutionPolicy",
    "EvolutionRecord",
    "Evolver",
    "Problem",
    "Trend",
    "TrustGateClosed",
    "classify",
]
