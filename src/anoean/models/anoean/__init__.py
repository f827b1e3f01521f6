"""AnoEAN, the paper's method: its networks (:mod:`.nets`) and its estimator
(:mod:`.detector`)."""

from anoean.models.anoean.detector import AnoEAN

__all__ = ["AnoEAN"]
