"""anoean: semi-supervised anomaly detection with an Encoding Adversarial Network."""

__version__ = "0.1.0"

from .base import BaseDetector, ModelFileError, load  # noqa: E402
from .models.anoean import AnoEAN  # noqa: E402

__all__ = ["AnoEAN", "BaseDetector", "ModelFileError", "load", "__version__"]
