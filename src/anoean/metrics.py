"""The paper's metrics, and scikit-learn scorers built on the anomaly score (public path;
they live in :mod:`anoean.core.metrics`)."""

from anoean.core.metrics import (
    BestF1,
    aucpr,
    aucpr_scorer,
    auroc,
    auroc_scorer,
    best_f1,
    evaluate,
)

__all__ = ["BestF1", "aucpr", "aucpr_scorer", "auroc", "auroc_scorer", "best_f1", "evaluate"]
