"""Detection metrics (interim version; the full module with validation lands with the data issue)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def aucpr(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve, computed as average precision."""
    return float(average_precision_score(np.asarray(y_true), np.asarray(scores)))


def evaluate(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """aucpr, best_f1, false_alarm (1 - precision) and recall at the best-F1 threshold, auroc."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    p, r, _ = precision_recall_curve(y_true, scores)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
    i = int(np.argmax(f1))
    return {
        "aucpr": aucpr(y_true, scores),
        "best_f1": float(f1[i]),
        "false_alarm": float(1 - p[i]),
        "recall": float(r[i]),
        "auroc": float(roc_auc_score(y_true, scores)),
    }
