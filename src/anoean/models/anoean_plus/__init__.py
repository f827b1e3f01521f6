"""AnoEANPlus: AnoEAN's encoders with trimmed training, an ensemble and a fused head."""

from anoean.models.anoean_plus.detector import AnoEANPlus

__all__ = ["AnoEANPlus"]
