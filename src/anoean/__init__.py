"""anoean: semi-supervised anomaly detection with an Encoding Adversarial Network."""

__version__ = "0.1.0"
