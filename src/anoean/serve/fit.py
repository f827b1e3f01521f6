"""Fitting a shippable model on a labelled table: the preprocessing, then a detector, with the
fit-time data checks and the validation metrics (:func:`fit_pipeline`)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.core.datachecks import DataWarning, warn_constant_columns, warn_squashed_columns
from anoean.core.splits import holdout_split
from anoean.data.preprocessing import TabularPreprocessor
from anoean.data.tables import (
    DataError,
    find_bad_rows,
    where,
)
from anoean.serve.engine import Scorer
from anoean.serve.pipeline import (
    PIPELINE_FORMAT,
    PIPELINE_VERSION,
    Pipeline,
    labels_of,
    resolve_method,
)
from anoean.training import checkpoint, distributed

logger = logging.getLogger("anoean")


@dataclass
class FitReport:
    """What :func:`fit_pipeline` learned and measured."""

    pipeline: Pipeline
    n_rows: int
    n_anomalies: int
    n_train: int
    n_val: int
    val_metrics: dict[str, float | None]


def _looks_numeric(col: pa.ChunkedArray) -> float:
    text = pc.cast(col, pa.string())
    ok = pc.match_substring_regex(text, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
    return float(pc.mean(pc.cast(pc.fill_null(ok, False), pa.int8())).as_py() or 0.0)


def _warn_questionable(pre: Any, X: np.ndarray, max_categories: int, source: str) -> None:
    """The fit-time data warnings, with the table's column names."""
    k = len(pre.numeric_columns_)
    warn_constant_columns(X, pre.feature_names_out_, stacklevel=4)
    raw = X[:, :k].astype(np.float64)
    if pre.scaling == "minmax":  # the values as the user wrote them, for the message
        raw = raw * (pre.data_max_ - pre.data_min_) + pre.data_min_
    warn_squashed_columns(raw, pre.numeric_columns_, kind="min-max", stacklevel=4)
    many = {c: len(v) for c, v in pre.categories_.items() if len(v) > max_categories}
    if many:
        warnings.warn(
            f"{source}: categorical column(s) with more than {max_categories} levels, each "
            f"level one feature: {many}; check that they are categories (an id or a numeric "
            "column read as text?), --exclude them, or raise --max-categories",
            DataWarning,
            stacklevel=4,
        )


def fit_pipeline(
    table: pa.Table,
    *,
    label_column: str | None = None,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    method: str = "anoeanplus",
    params: dict[str, Any] | None = None,
    target_false_alarm: float | None = None,
    anomaly_values: Sequence[str] = (),
    normal_values: Sequence[str] = (),
    unknown: str = "ignore",
    validation_fraction: float = 0.2,
    random_state: int = 0,
    verbose: int = 0,
    source: str = "data",
    fmt: str = "parquet",
    max_categories: int = 100,
) -> FitReport:
    """Fit the preprocessing and a detector on a table, labelled or not.

    ``label_column`` names the column of labels (an anomaly is 1, or a value of
    ``anomaly_values``); None means the table has no labels: every row is unlabelled (y=0),
    which the detectors that learn from normal data alone accept (AnoEANPlus trains its
    anomaly generator then, :mod:`anoean.nn.generator`).

    Fitting works on questionable data but warns (:class:`anoean.core.datachecks.DataWarning`,
    naming the columns): constant columns, an all-constant table, a numeric column squashed
    by min-max scaling because of an extreme value, and a categorical column with more than
    ``max_categories`` levels (each level becomes a feature). With ``verbose``, bars on
    stderr show the preprocessing (column by column) and the training (epoch by epoch).

    A stratified ``validation_fraction`` of the rows is held out (both classes): the
    detector uses it for early stopping and for the threshold (``target_false_alarm`` of the
    validation normals), and the returned metrics are measured on it. The preprocessing is
    fitted on all rows: it uses no labels, and fitting it on every row means every category
    present in the file is known.

    Raises
    ------
    DataError
        A missing label column, unusable labels, no normal rows, or a bad value (named by
        column and row).
    """
    if label_column is None:
        if anomaly_values or normal_values:
            raise DataError(
                f"{source}: anomaly or normal values given without a label column; name it "
                "with label_column (--label-column)"
            )
        y = np.zeros(table.num_rows, dtype=np.int64)
    else:
        y = _labels(table, label_column, anomaly_values, normal_values, source, fmt)
    n_anom = int(y.sum())
    _check_column_names(table, label_column, categorical, exclude, source)
    if categorical is None:
        _refuse_numbers_as_text(table, label_column, exclude, source, fmt)
    show = bool(verbose) and distributed.is_main_process()
    pre, X = _preprocess(table, label_column, categorical, exclude, unknown, source, show)
    _warn_questionable(pre, X, max_categories, source)
    tr, va = _holdout(y, validation_fraction, random_state, source)
    det = _detector(method, params, random_state, verbose, target_false_alarm)
    if distributed.current() is not None and not getattr(det, "_distributed_training", False):
        raise ValueError(
            f"{type(det).__name__} does not train distributed; --distributed trains anoean and "
            "anoeanplus"
        )
    with warnings.catch_warnings():
        # already checked above on the named columns; the detector sees them unnamed
        warnings.simplefilter("ignore", DataWarning)
        det.fit(X[tr], y[tr], X_val=X[va], y_val=y[va])
    metrics = _validation_metrics(det, X[va], y[va])
    fit = {
        "rows": int(y.size),
        "anomalies": n_anom,
        "train_rows": int(tr.size),
        "validation_rows": int(va.size),
        "source": str(source),
        **_training(det),
    }
    meta = _meta(
        table,
        pre,
        det,
        method=method,
        label_column=label_column,
        anomaly_values=anomaly_values,
        normal_values=normal_values,
        n_features=int(X.shape[1]),
        fit=fit,
        metrics=metrics,
    )
    scorer = Scorer(
        "torch", float(det.threshold_), int(X.shape[1]), det._unchecked_anomaly_score, det
    )
    return FitReport(
        Pipeline(pre, scorer, meta, None, det),
        int(y.size),
        n_anom,
        int(tr.size),
        int(va.size),
        metrics,
    )


def _training(det: Any) -> dict[str, Any]:
    """How a neural detector's training ended (nothing for the kernel baselines): the epochs
    run, the epoch kept, its validation AUC-PR (None without a validation signal), and
    whether early stopping ended the run."""
    history = getattr(det, "history_", None)
    if not history:
        return {}
    best = int(det.best_epoch_)
    kept: dict[str, Any] = next((h for h in history if h.get("epoch") == best), {})
    patience = getattr(det, "patience", None)
    ran = len(history)
    stopped = (
        patience is not None and ran < int(det.max_epochs) and kept.get("val_aucpr") is not None
    )
    return {
        "epochs": ran,
        "max_epochs": int(det.max_epochs),
        "best_epoch": best,
        "best_val_aucpr": kept.get("val_aucpr"),
        "stopped_early": bool(stopped),
    }


def _labels(
    table: pa.Table,
    label_column: str,
    anomaly_values: Sequence[str],
    normal_values: Sequence[str],
    source: str,
    fmt: str,
) -> np.ndarray:
    """The 0/1 labels; a table with no normal row is refused."""
    y = labels_of(
        table,
        label_column,
        anomaly_values=anomaly_values,
        normal_values=normal_values,
        source=source,
        fmt=fmt,
    )
    if int(y.sum()) == y.size:
        raise DataError(
            f"{source}: label column {label_column!r} has no normal rows (all {y.size} rows are "
            "anomalies): the model learns what normal looks like, so it needs normal rows"
        )
    return y


def _check_column_names(
    table: pa.Table,
    label_column: str | None,
    categorical: Sequence[str] | None,
    exclude: Sequence[str],
    source: str,
) -> None:
    """Refuse columns named in ``categorical`` / ``exclude`` that are not in the table, and
    a categorical label column."""
    missing = [c for c in [*exclude, *(categorical or ())] if c not in table.column_names]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} not found; columns are {table.column_names}"
        )
    if label_column is not None and label_column in (categorical or ()):
        raise DataError(f"{source}: the label column {label_column!r} cannot be categorical")


def _refuse_numbers_as_text(
    table: pa.Table, label_column: str | None, exclude: Sequence[str], source: str, fmt: str
) -> None:
    """Refuse a text column that holds numbers (90% of its rows or more) rather than one-hot
    encode it: a numeric column with one typo is read as text."""
    for c in table.column_names:
        if c in exclude or c == label_column or not pa.types.is_string(table.column(c).type):
            continue
        share = _looks_numeric(table.column(c))
        if share >= 0.9:
            mask, reasons = find_bad_rows(table.select([c]), [c])
            if not mask.any():  # every value a number, but read as text
                raise DataError(
                    f"{source}: column {c!r} holds numbers written as text (e.g. "
                    f"{table.column(c)[0].as_py()!r}, with spaces or quotes around it); "
                    "write them as plain numbers, or list the column in --categorical"
                )
            row = int(np.flatnonzero(mask)[0])
            raise DataError(
                f"{source}: column {c!r} holds numbers ({share:.0%} of rows) but also "
                f"text, first at {where(row, fmt)}: {reasons[row]}; fix the value, or list "
                "the column in --categorical to treat it as categories"
            )


def _preprocess(
    table: pa.Table,
    label_column: str | None,
    categorical: Sequence[str] | None,
    exclude: Sequence[str],
    unknown: str,
    source: str,
    progress: bool = False,
) -> tuple[TabularPreprocessor, np.ndarray]:
    """The preprocessor fitted on every row, and the features it gives (with a bar of the
    columns on stderr with ``progress``)."""
    pre = TabularPreprocessor(
        categorical=categorical,
        exclude=[*exclude, *([label_column] if label_column is not None else [])],
        unknown=unknown,
    )
    try:
        X = pre.fit_transform(table, progress=progress)
    except ValueError as exc:
        raise DataError(f"{source}: {exc}") from exc
    if X.shape[1] == 0:
        raise DataError(f"{source}: no feature columns left after excluding {list(exclude)}")
    return pre, X


def _holdout(
    y: np.ndarray, validation_fraction: float, random_state: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """The stratified (train, validation) row indices; too few normals left is refused."""
    rng = np.random.default_rng(random_state)
    try:
        tr, va = holdout_split(y, validation_fraction, rng)
    except ValueError as exc:
        raise DataError(f"{source}: {exc}") from exc
    if int((y[tr] == 0).sum()) < 2:
        raise DataError(
            f"{source}: {y.size} rows ({int((y == 0).sum())} normal) are too few: after holding "
            f"out {va.size} row(s) for validation, {int((y[tr] == 0).sum())} normal row(s) are "
            "left to train on, and at least 2 are needed"
        )
    return tr, va


def _detector(
    method: str,
    params: dict[str, Any] | None,
    random_state: int,
    verbose: int,
    target_false_alarm: float | None,
) -> Any:
    """An unfitted detector of ``method`` with ``params``, the seed and verbosity where it
    takes them, and the threshold rule; a parameter it does not take is refused."""
    cls = resolve_method(method)
    kwargs = dict(params or {})
    accepted = cls().get_params()
    if "random_state" in accepted:
        kwargs.setdefault("random_state", random_state)
    if "verbose" in accepted:
        kwargs.setdefault("verbose", verbose)
    if target_false_alarm is not None:
        kwargs["target_false_alarm"] = target_false_alarm
        if "contamination" in accepted:
            kwargs["contamination"] = None
    unknown_params = sorted(set(kwargs) - set(accepted))
    if unknown_params:
        raise ValueError(
            f"{cls.__name__} has no parameter(s) {unknown_params}; it takes {sorted(accepted)}"
        )
    return cls(**kwargs)


def _validation_metrics(det: Any, X_val: np.ndarray, y_val: np.ndarray) -> dict[str, float | None]:
    """At the detector's threshold, the ``false_positive_rate`` (validation normals that
    raise an alarm) and the recall; with anomalies among the validation rows, the paper's
    metrics (``false_discovery_rate`` is their 1 - precision at the best F1)."""
    from anoean.serve.evaluate import paper_metrics, threshold_metrics

    s_val = det.anomaly_score(X_val)
    metrics: dict[str, float | None] = threshold_metrics(y_val, s_val, float(det.threshold_))
    if y_val.any():
        metrics.update(paper_metrics(y_val, s_val))
    return metrics


def _meta(
    table: pa.Table,
    pre: TabularPreprocessor,
    det: Any,
    *,
    method: str,
    label_column: str | None,
    anomaly_values: Sequence[str],
    normal_values: Sequence[str],
    n_features: int,
    fit: dict[str, Any],
    metrics: dict[str, float | None],
) -> dict[str, Any]:
    """The pipeline's ``pipeline.json`` content."""
    return {
        "format": PIPELINE_FORMAT,
        "format_version": PIPELINE_VERSION,
        "method": method.lower(),
        "detector_class": type(det).__name__,
        "label_column": label_column,
        "anomaly_values": list(anomaly_values),
        "normal_values": list(normal_values),
        "input_types": {c: str(table.schema.field(c).type) for c in pre.input_columns_},
        "n_features": n_features,
        "fit": fit,
        "validation": metrics,
    }


def default_checkpoint_dir(out: str | os.PathLike[str]) -> Path:
    """Where a fit writing the model directory ``out`` keeps its training checkpoints:
    ``<out>.checkpoints`` beside it."""
    p = Path(out)
    return p.with_name(p.name + ".checkpoints")


@contextmanager
def training_session(
    *,
    distributed_run: bool = False,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    device: str = "auto",
) -> Iterator[bool]:
    """The block in which :func:`fit_pipeline` trains: data-parallel across the processes of
    a ``torchrun`` launch (``distributed_run``; :mod:`anoean.training.distributed`), and
    writing a checkpoint every epoch to ``checkpoint_dir`` (resuming from the latest one with
    ``resume``; :mod:`anoean.training.checkpoint`). Yields whether this process is the one
    that saves and prints (rank 0, or the only process).

    On the way out without an error the checkpoints are removed (the model directory then
    holds the result); after an error they stay, for ``resume``.
    """
    if resume and checkpoint_dir is None:
        raise ValueError("resume needs the checkpoint directory of the interrupted run")
    with ExitStack() as stack:
        if distributed_run:
            stack.enter_context(distributed.session(device))
        if checkpoint_dir is not None:
            stack.enter_context(checkpoint.checkpoints(checkpoint_dir, resume=resume))
        yield distributed.is_main_process()
        if checkpoint_dir is not None and distributed.is_main_process():
            checkpoint.remove_checkpoints(checkpoint_dir)
