"""The paper's metrics of a fitted model on a labelled table (``anoean evaluate``).

Two rates are easily confused, so they carry distinct names in the output, the JSON keys
and the docs:

* ``false_discovery_rate``: the share of the *alarms* that are false (normal rows), 1 -
  precision, at the best-F1 threshold. The paper's "FA" (fausses anomalies / anomalies
  détectées).
* ``false_positive_rate``: the share of the *normal rows* that raise an alarm at the model's
  own threshold. The model's budget for it is its ``target_false_alarm`` (the share of
  validation normals above the threshold, set in fit); :func:`evaluate_table` warns when
  the rate measured on these normals exceeds the budget beyond sampling noise.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from anoean.core.datachecks import DataWarning
from anoean.data.tables import (
    DataError,
    where,
)
from anoean.serve.pipeline import Pipeline, labels_of

logger = logging.getLogger("anoean")


def evaluate_table(
    pipe: Pipeline,
    table: pa.Table,
    *,
    label_column: str | None = None,
    anomaly_values: Sequence[str] | None = None,
    normal_values: Sequence[str] | None = None,
    source: str = "data",
    fmt: str = "parquet",
) -> tuple[dict[str, float | None], np.ndarray, np.ndarray]:
    """Metrics of the model on a labelled table: (metrics, labels, scores).

    The paper's metrics (AUC-PR, best F1 with its ``false_discovery_rate`` and recall,
    AUROC) plus the ``false_positive_rate`` and the recall at the model's own threshold, and
    the model's ``false_positive_budget`` (with a warning when it is exceeded).
    """
    col = label_column or pipe.label_column
    if not col:
        raise DataError(f"{source}: pass --label-column")
    y = labels_of(
        table,
        col,
        anomaly_values=pipe.meta.get("anomaly_values", ())
        if anomaly_values is None
        else anomaly_values,
        normal_values=pipe.meta.get("normal_values", ())
        if normal_values is None
        else normal_values,
        source=source,
        fmt=fmt,
    )
    if y.all():
        raise DataError(f"{source}: label column {col!r} has no normal rows")
    if not y.any():
        raise DataError(
            f"{source}: label column {col!r} has no anomalies: the metrics are undefined"
        )
    missing = [c for c in pipe.preprocessor.input_columns_ if c not in table.column_names]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} were used in fit but are missing here; "
            f"the model needs {pipe.preprocessor.input_columns_}"
        )
    mask, reasons = pipe.unscorable_rows(table)
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        raise DataError(f"{source}: {where(row, fmt)}, {reasons[row]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # unknown categories: as in fit's policy
        X = pipe.features(table)
    try:
        scores = pipe.score(X)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from exc
    metrics = {**paper_metrics(y, scores), **threshold_metrics(y, scores, pipe.threshold)}
    metrics["rows"] = float(y.size)
    metrics["anomalies"] = float(y.sum())
    budget = false_positive_budget(pipe)
    metrics["false_positive_budget"] = budget
    if budget is not None:
        warn_over_budget(metrics, int((y == 0).sum()), budget, source)
    return metrics, y, scores


def paper_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """AUC-PR, AUROC, the best F1 with its ``false_discovery_rate`` (1 - precision) and
    recall (:func:`anoean.core.metrics.evaluate`, its ``false_alarm`` renamed)."""
    from anoean.core.metrics import evaluate

    m: dict[str, float | None] = dict(evaluate(y, scores))
    m["false_discovery_rate"] = m.pop("false_alarm")
    return m


def threshold_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """At the model's threshold: the ``false_positive_rate`` (normal rows that raise an
    alarm), the recall (None without anomalies) and the threshold."""
    alarm = scores > threshold
    return {
        "false_positive_rate": float(alarm[y == 0].mean()),
        "recall_at_threshold": float(alarm[y == 1].mean()) if (y == 1).any() else None,
        "threshold": float(threshold),
    }


def false_positive_budget(pipe: Pipeline) -> float | None:
    """The model's false-positive budget: its ``target_false_alarm`` when the threshold was
    set by it (not by ``contamination``); None otherwise."""
    rule = None
    det = pipe._detector if pipe._detector is not None else pipe.scorer.detector
    if det is not None:
        rule = getattr(det, "threshold_rule_", None)
    elif pipe.path is not None:
        from anoean.core.modelfile import CONFIG_FILE

        try:
            config = json.loads((Path(pipe.path) / CONFIG_FILE).read_text(encoding="utf-8"))
            rule = config.get("state", {}).get("threshold_rule_")
        except (OSError, ValueError):
            rule = None
    m = re.match(r"^target_false_alarm=([0-9.eE+-]+)", str(rule or ""))
    return float(m.group(1)) if m else None


def warn_over_budget(metrics: dict[str, Any], n_normal: int, budget: float, source: str) -> bool:
    """Warn (:class:`~anoean.core.datachecks.DataWarning`) when the false-positive rate on
    ``n_normal`` labelled normals exceeds ``budget`` beyond sampling noise: a one-sided
    binomial test, p < 0.01, of that many false positives under the budget. Records the
    verdict in ``metrics["false_positive_budget_exceeded"]``."""
    from scipy.stats import binom

    rate = float(metrics["false_positive_rate"])
    k = int(round(rate * n_normal))
    p_value = float(binom.sf(k - 1, n_normal, budget)) if k > 0 else 1.0
    exceeded = rate > budget and p_value < 0.01
    metrics["false_positive_budget_exceeded"] = exceeded
    if exceeded:
        warnings.warn(
            f"{source}: {rate:.1%} of the normal rows ({k} of {n_normal}) raise an alarm, "
            f"above the model's false-positive budget of {budget:.1%} (target_false_alarm; "
            f"binomial p = {p_value:.2g}): the threshold set on the validation normals does "
            "not hold on this data. Re-set it on normal rows like these "
            "(BaseDetector.set_threshold), or refit with a smaller --target-false-alarm",
            DataWarning,
            stacklevel=3,
        )
    return exceeded
