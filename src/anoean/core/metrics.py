"""Evaluation metrics of the paper: AUC-PR, best F1, false alarm and recall, AUROC.

Conventions (all functions):

- ``y_true`` holds 1 for an anomaly and 0 for a normal sample (bool or 0/1 numbers).
- ``scores`` are anomaly scores: a *higher* score means *more* anomalous.
- AUC-PR is the **average precision** as scikit-learn defines it
  (``sklearn.metrics.average_precision_score``): ``sum_k (R_k - R_{k-1}) P_k`` over the
  distinct score thresholds taken from high to low, with ``R_0 = 0``. It is a step-wise sum,
  not a trapezoidal area, so it is not optimistic about interpolating between points.
- Tied scores form one threshold: samples with equal scores are always all flagged or all
  not flagged, so ties never get an order-dependent value.

The implementations are plain numpy (one sort) and are checked against scikit-learn in
``tests/test_metrics.py``. ``aucpr`` is cheap enough to call once per training epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BestF1",
    "aucpr",
    "aucpr_scorer",
    "auroc",
    "auroc_scorer",
    "best_f1",
    "evaluate",
]


def _validate(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert the inputs; return (y as bool, scores as float64)."""
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and scores must be 1-D; got shapes {y.shape} and {s.shape}")
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"y_true and scores differ in length: {y.shape[0]} labels, {s.shape[0]} scores"
        )
    if y.shape[0] == 0:
        raise ValueError("y_true and scores are empty")
    if y.dtype == np.bool_:
        yb = y
    else:
        if not (np.issubdtype(y.dtype, np.number)):
            raise ValueError(
                f"y_true must be binary (0 = normal, 1 = anomaly); got dtype {y.dtype}"
            )
        bad = np.flatnonzero((y != 0) & (y != 1))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"y_true must be binary (0 = normal, 1 = anomaly); found {y[i]!r} at index {i}"
            )
        yb = y == 1
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers; got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        i = int(bad[0])
        # NaN or inf almost always means a numerical failure upstream; ranking it would
        # hide that, so refuse instead.
        raise ValueError(
            f"scores must be finite; found {s[i]!r} at index {i} "
            f"({bad.size} non-finite value(s) in all)"
        )
    n_pos = int(yb.sum())
    if n_pos == 0 or n_pos == yb.shape[0]:
        which = "no anomalies (all 0)" if n_pos == 0 else "no normal samples (all 1)"
        raise ValueError(f"y_true has only one class: {which}; the metrics need both classes")
    return yb, s


def _pr_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positive counts at every distinct threshold, highest first.

    Returns ``(tps, fps, thresholds)``: flagging every sample with score >= thresholds[k]
    gives tps[k] true positives and fps[k] false positives.
    """
    order = np.argsort(s, kind="mergesort")[::-1]
    s_sorted = s[order]
    y_sorted = y[order]
    # the last position of each run of equal scores closes one threshold
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.shape[0] - 1]
    tps = np.cumsum(y_sorted, dtype=np.int64)[last]
    fps = (last + 1) - tps
    return tps, fps, s_sorted[last]


def aucpr(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve, as average precision.

    Same value as ``sklearn.metrics.average_precision_score(y_true, scores)``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        1 for an anomaly, 0 for a normal sample.
    scores : array-like of shape (n,)
        Anomaly scores, higher means more anomalous. Must be finite.

    Returns
    -------
    float
        Average precision in [0, 1].

    Raises
    ------
    ValueError
        On a length mismatch, non-binary labels, non-finite scores, or a single class.
    """
    y, s = _validate(y_true, scores)
    tps, fps, _ = _pr_points(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def auroc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half), same as ``roc_auc_score``.

    Parameters and errors as in :func:`aucpr`.
    """
    y, s = _validate(y_true, scores)
    return _auroc(y, s)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    tps, fps, _ = _pr_points(y, s)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    # trapezoids between thresholds = Mann-Whitney U with ties counted as 1/2
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


@dataclass(frozen=True)
class BestF1:
    """The point of the precision-recall curve with the highest F1.

    Attributes
    ----------
    f1 : float
        The maximum F1 over all thresholds.
    threshold : float
        Flag samples with ``score >= threshold`` to get it. When several thresholds reach
        the same F1, the highest one is kept (fewest alarms).
    precision, recall : float
        At that threshold.
    false_alarm : float
        ``1 - precision``: the fraction of flagged samples that are normal (the paper's
        definition, not the false positive rate).
    """

    f1: float
    threshold: float
    precision: float
    recall: float
    false_alarm: float


def best_f1(y_true: ArrayLike, scores: ArrayLike) -> BestF1:
    """Maximum F1 over the thresholds of the precision-recall curve.

    Parameters and errors as in :func:`aucpr`.
    """
    y, s = _validate(y_true, scores)
    return _best_f1(y, s)


def _best_f1(y: np.ndarray, s: np.ndarray) -> BestF1:
    tps, fps, thresholds = _pr_points(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    denom = precision + recall
    f1 = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    k = int(np.argmax(f1))  # first maximum = highest threshold
    return BestF1(
        f1=float(f1[k]),
        threshold=float(thresholds[k]),
        precision=float(precision[k]),
        recall=float(recall[k]),
        false_alarm=float(1.0 - precision[k]),
    )


def evaluate(y_true: ArrayLike, scores: ArrayLike) -> dict[str, Any]:
    """All of the paper's metrics at once.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        1 for an anomaly, 0 for a normal sample.
    scores : array-like of shape (n,)
        Anomaly scores, higher means more anomalous. Must be finite.

    Returns
    -------
    dict
        ``aucpr`` (average precision), ``best_f1`` (maximum F1 over thresholds),
        ``false_alarm`` (1 - precision at the best-F1 threshold), ``recall`` (at the
        best-F1 threshold) and ``auroc``; all Python floats.

    Raises
    ------
    ValueError
        On a length mismatch, non-binary labels, non-finite scores, or a single class.
    """
    y, s = _validate(y_true, scores)
    tps, fps, _ = _pr_points(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    ap = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    b = _best_f1(y, s)
    return {
        "aucpr": ap,
        "best_f1": b.f1,
        "false_alarm": b.false_alarm,
        "recall": b.recall,
        "auroc": _auroc(y, s),
    }


def _anomaly_scores(estimator: Any, X: Any) -> np.ndarray:
    """``estimator.anomaly_score(X)``, or ``-estimator.score_samples(X)`` for an estimator
    without it (a scikit-learn Pipeline ending in a detector; scikit-learn's outlier
    detectors): higher means more anomalous either way."""
    score = getattr(estimator, "anomaly_score", None)
    if callable(score):
        return np.asarray(score(X), dtype=np.float64)
    return -np.asarray(estimator.score_samples(X), dtype=np.float64)


def aucpr_scorer(estimator: Any, X: Any, y: ArrayLike) -> float:
    """A scikit-learn scorer (``scoring=aucpr_scorer`` in GridSearchCV, cross_val_score):
    the AUC-PR of the estimator's anomaly scores against ``y`` (1 = anomaly).

    The stock ``scoring="average_precision"`` ranks by ``decision_function``, which follows
    scikit-learn's outlier sign (higher is more *normal*); with y=1 for an anomaly its
    ranking is inverted, and model selection silently picks the worst model. This scorer
    ranks by the anomaly score instead."""
    return aucpr(y, _anomaly_scores(estimator, X))


def auroc_scorer(estimator: Any, X: Any, y: ArrayLike) -> float:
    """As :func:`aucpr_scorer`, with the AUROC (the stock ``"roc_auc"`` inverts too)."""
    return auroc(y, _anomaly_scores(estimator, X))
