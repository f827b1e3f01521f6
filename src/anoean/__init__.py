"""anoean: semi-supervised anomaly detection with an Encoding Adversarial Network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anoean._version import __version__

__all__ = ["AnoEAN", "AnoEANPlus", "BaseDetector", "ModelFileError", "load", "__version__"]

if TYPE_CHECKING:
    from anoean.core.detector import BaseDetector, load
    from anoean.core.modelfile import ModelFileError
    from anoean.models.anoean.detector import AnoEAN
    from anoean.models.anoean_plus.detector import AnoEANPlus


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): ``import anoean.export`` must not pull in torch or scikit-learn, so
    # that the numpy-only scorer stays light for embedded use.
    if name == "AnoEAN":
        from anoean.models.anoean.detector import AnoEAN

        return AnoEAN
    if name == "AnoEANPlus":
        from anoean.models.anoean_plus.detector import AnoEANPlus

        return AnoEANPlus
    if name in ("BaseDetector", "load"):
        from anoean.core import detector

        return getattr(detector, name)
    if name == "ModelFileError":
        from anoean.core.modelfile import ModelFileError

        return ModelFileError
    raise AttributeError(f"module 'anoean' has no attribute {name!r}")
