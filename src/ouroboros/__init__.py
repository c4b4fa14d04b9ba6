"""Ouroboros: a governed runtime for self-improving agents."""

__version__ = "0.1.0"
