"""Detectors implemented in anoean."""

from .anoean import AnoEAN

__all__ = ["AnoEAN"]
