"""The paper's metrics (public path; they live in :mod:`anoean.core.metrics`)."""

from anoean.core.metrics import BestF1, aucpr, auroc, best_f1, evaluate

__all__ = ["BestF1", "aucpr", "auroc", "best_f1", "evaluate"]
