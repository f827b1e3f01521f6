"""The paper's metrics of a fitted model on a labelled table (``anoean evaluate``)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

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

    The paper's metrics (AUC-PR, best F1 with its false-alarm rate and recall, AUROC) plus
    the false-alarm rate and recall at the model's own threshold.
    """
    from anoean.core.metrics import evaluate

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
    alarm = scores > pipe.threshold
    metrics: dict[str, float | None] = dict(evaluate(y, scores))
    metrics["false_alarm_at_threshold"] = float(alarm[y == 0].mean())
    metrics["recall_at_threshold"] = float(alarm[y == 1].mean())
    metrics["threshold"] = pipe.threshold
    metrics["rows"] = float(y.size)
    metrics["anomalies"] = float(y.sum())
    return metrics, y, scores
