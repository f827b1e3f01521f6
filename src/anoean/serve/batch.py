"""Scoring one batch of raw rows with a model directory (:func:`score_batch`): a pure function
of a model and a batch, so that a distributed engine can map it over partitions (a model
directory is loaded once per process, :func:`anoean.serve.pipeline.get_pipeline`). Rows that
cannot be scored stop scoring or are flagged; :mod:`anoean.serve.scoring` streams whole
files through it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from anoean.data.tables import DataError, where
from anoean.serve.pipeline import Pipeline, get_pipeline

SCORE_COLUMN = "anomaly_score"
ALARM_COLUMN = "is_anomaly"
ERROR_COLUMN = "score_error"
ON_ERROR = ("fail", "flag")


def _check_columns(pipe: Pipeline, names: Sequence[str], source: str) -> list[str]:
    """Raise on missing model columns; return the extra ones (ignored)."""
    pre = pipe.preprocessor
    missing = [c for c in pre.input_columns_ if c not in names]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} were used in fit but are missing here; "
            f"the model needs {pre.input_columns_}"
        )
    ignored = {*pre.exclude, SCORE_COLUMN, ALARM_COLUMN, ERROR_COLUMN}
    return [c for c in names if c not in pre.input_columns_ and c not in ignored]


def score_batch(
    model: str | os.PathLike[str] | Pipeline,
    batch: pa.RecordBatch | pa.Table,
    *,
    on_error: str = "fail",
    strict_categories: bool | None = None,
    source: str = "batch",
    fmt: str = "parquet",
    row_offset: int = 0,
    engine: str = "auto",
) -> pa.RecordBatch:
    """Score raw rows: the batch with ``anomaly_score`` and ``is_anomaly`` appended.

    Every input row is kept, in order, and every score written is finite. A row that cannot
    be scored (a missing, NaN or infinite number; a number beyond the float32 range once
    scaled; a row whose score would not be finite; a missing category; an unknown category
    when ``strict_categories``) either stops scoring with a :class:`DataError` naming the
    column and the row (``on_error="fail"``), or is kept with a null score, marked as an
    anomaly (``is_anomaly`` true: a row that cannot be scored is never passed as normal),
    and its reason in a ``score_error`` column (``on_error="flag"``).

    Parameters
    ----------
    model : path or Pipeline
        A model directory (loaded once per process) or a loaded :class:`Pipeline`.
    batch : pyarrow RecordBatch or Table
        Raw rows with at least the columns used in fit; others are passed through.
    strict_categories : bool, optional
        Treat unknown categories as unscorable. Default: the preprocessor's ``unknown``
        setting from fit (``"error"`` is strict).
    row_offset : int
        Index of the batch's first row in its file, for error messages.
    engine : {"auto", "torch", "numpy", "onnx"}
        How a model given as a directory computes the score (see
        :mod:`anoean.serve.engine`); ignored for a loaded :class:`Pipeline`.
    """
    scored, _ = _score_batch(
        model,
        batch,
        on_error=on_error,
        strict_categories=strict_categories,
        source=source,
        fmt=fmt,
        row_offset=row_offset,
        engine=engine,
    )
    return scored


def _as_batch(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    if isinstance(batch, pa.RecordBatch):
        return batch
    if batch.num_rows:
        return batch.combine_chunks().to_batches()[0]
    return pa.RecordBatch.from_pylist([], schema=batch.schema)


def _score_batch(
    model: str | os.PathLike[str] | Pipeline,
    batch: pa.RecordBatch | pa.Table,
    *,
    on_error: str,
    strict_categories: bool | None,
    source: str,
    fmt: str,
    row_offset: int,
    engine: str = "auto",
) -> tuple[pa.RecordBatch, dict[str, int]]:
    """:func:`score_batch`, plus the count of unknown categories per column."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    pipe = get_pipeline(model, engine=engine)
    batch = _as_batch(batch)
    _check_columns(pipe, batch.schema.names, source)
    for name in (SCORE_COLUMN, ALARM_COLUMN):
        if name in batch.schema.names:
            raise DataError(f"{source}: the input already has a column {name!r}; rename or drop it")
    if strict_categories is None:
        strict_categories = pipe.preprocessor.unknown == "error"
    # the hottest path: categories read as one-hot positions by the scorer itself
    scored = _score_compact(pipe, batch, strict_categories)
    if scored is not None:
        scores, unknown = scored
        nothing = np.zeros(batch.num_rows, dtype=bool)
        return _scored_batch(batch, scores, nothing, {}, pipe.threshold, on_error), unknown
    # the hot path: a batch in which every row can be encoded is checked and encoded in
    # one pass; any other batch goes through the row-by-row checks below
    encoded = _encode_scorable(pipe, batch, strict_categories)
    reasons: dict[int, str]
    if encoded is not None:
        mask, reasons = np.zeros(batch.num_rows, dtype=bool), {}
    else:
        mask, reasons = pipe.unscorable_rows(batch, strict_categories=strict_categories)
    if mask.any() and on_error == "fail":
        first = int(np.flatnonzero(mask)[0])
        raise _unscorable(reasons, first, int(mask.sum()), source, fmt, row_offset)
    scores, mask, unknown = _score_rows(
        pipe,
        batch,
        mask,
        reasons,
        strict_categories=strict_categories,
        on_error=on_error,
        source=source,
        fmt=fmt,
        row_offset=row_offset,
        encoded=encoded,
    )
    return _scored_batch(batch, scores, mask, reasons, pipe.threshold, on_error), unknown


def _encode_scorable(
    pipe: Pipeline, batch: pa.RecordBatch, strict_categories: bool
) -> tuple[np.ndarray, dict[str, int]] | None:
    """(features, unknown categories per column) when every row of ``batch`` can be
    encoded (:meth:`~anoean.data.preprocessing.TabularPreprocessor.encode_scorable`), else
    None; None too for a preprocessor without that method."""
    pre = pipe.preprocessor
    fast = getattr(pre, "encode_scorable", None)
    if fast is None or not batch.num_rows:
        return None
    result: tuple[np.ndarray, dict[str, int]] | None = fast(
        batch.select(pre.input_columns_), strict_categories=strict_categories
    )
    return result


def _score_compact(
    pipe: Pipeline, batch: pa.RecordBatch, strict_categories: bool
) -> tuple[np.ndarray, dict[str, int]] | None:
    """(scores, unknown categories per column) of a batch in which every row can be
    encoded and gets a finite score, computed by the scorer's compact path
    (:attr:`~anoean.serve.engine.Scorer.compact`: the numbers and the one-hot positions,
    :meth:`~anoean.data.preprocessing.TabularPreprocessor.encode_compact`); None when the
    scorer has no such path or a row needs the general one (which then explains it)."""
    fn = getattr(pipe.scorer, "compact", None)
    pre = pipe.preprocessor
    if fn is None or not batch.num_rows or not hasattr(pre, "encode_compact"):
        return None
    parts = pre.encode_compact(
        batch.select(pre.input_columns_), strict_categories=strict_categories
    )
    if parts is None:
        return None
    xnum, positions, unknown = parts
    scores = np.asarray(fn(xnum, positions), dtype=np.float64)
    if not np.isfinite(scores).all():
        return None
    return scores, unknown


def _unscorable(
    reasons: dict[int, str], row: int, count: int, source: str, fmt: str, row_offset: int
) -> DataError:
    """The error that stops scoring at ``row`` of a batch (``count`` such rows in it)."""
    extra = f" ({count} such rows in this batch)" if count > 1 else ""
    return DataError(
        f"{source}: {where(row_offset + row, fmt)}, {reasons[row]}{extra}; use "
        "--on-error flag (on_error='flag') to score the other rows and mark these"
    )


def _score_rows(
    pipe: Pipeline,
    batch: pa.RecordBatch,
    mask: np.ndarray,
    reasons: dict[int, str],
    *,
    strict_categories: bool,
    on_error: str,
    source: str,
    fmt: str,
    row_offset: int,
    encoded: tuple[np.ndarray, dict[str, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Score the rows not in ``mask``: (scores, mask, unknown categories per column).

    ``encoded`` is the features of the whole batch and its unknown categories, when
    already computed (then ``mask`` is all false). A row whose score is not finite stops
    scoring (``on_error="fail"``) or joins the returned mask, its reason added to
    ``reasons``; unscored rows get a score of 0 here.
    """
    pre = pipe.preprocessor
    n = batch.num_rows
    unknown: dict[str, int] = {}
    scores = np.zeros(n, dtype=np.float64)
    good = ~mask
    if encoded is not None:
        X, unknown = encoded
    elif good.any():
        sub = batch if not mask.any() else batch.filter(pa.array(good))
        sub = sub.select(pre.input_columns_)
        if not strict_categories:
            unknown = pre.unknown_category_counts(sub)
        with warnings.catch_warnings():
            # extra columns and unknown categories: counted and reported once per file
            warnings.simplefilter("ignore", UserWarning)
            try:
                X = pre.transform(sub)
            except ValueError as exc:
                raise DataError(f"{source}: rows {row_offset}-{row_offset + n - 1}: {exc}") from exc
    if good.any():
        s = np.asarray(pipe.scorer(X), dtype=np.float64)  # unchecked: handled here
        finite = np.isfinite(s)
        idx = np.flatnonzero(good)
        if not finite.all():
            # a row the model's arithmetic overflows on: never a NaN score passed as normal
            for k in np.flatnonzero(~finite)[:1000].tolist():
                reasons[int(idx[k])] = pipe.scorer.explain(X[k])
            bad = idx[~finite]
            mask = mask.copy()
            mask[bad] = True
            if on_error == "fail":
                first = int(bad[0])
                reasons.setdefault(first, "its score is not finite")
                raise _unscorable(reasons, first, int(bad.size), source, fmt, row_offset)
        scores[idx] = np.where(finite, s, 0.0)
    return scores, mask, unknown


def _scored_batch(
    batch: pa.RecordBatch,
    scores: np.ndarray,
    mask: np.ndarray,
    reasons: dict[int, str],
    threshold: float,
    on_error: str,
) -> pa.RecordBatch:
    """The batch with ``anomaly_score`` (null where ``mask``), ``is_anomaly`` and, with
    ``on_error="flag"``, each unscored row's reason in ``score_error``."""
    null = mask if mask.any() else None
    score_arr = pa.array(np.where(mask, 0.0, scores), mask=null)
    # a row that cannot be scored is marked as an anomaly, so it is never passed as normal
    alarm = pa.array(mask | (~mask & (scores > threshold)))
    cols, names = list(batch.columns), list(batch.schema.names)
    cols += [score_arr, alarm]
    names += [SCORE_COLUMN, ALARM_COLUMN]
    if on_error == "flag":
        err = np.full(batch.num_rows, None, dtype=object)
        for r in np.flatnonzero(mask).tolist():
            err[r] = reasons.get(r, "cannot be scored")
        cols.append(pa.array(err, type=pa.string()))
        names.append(ERROR_COLUMN)
    return pa.RecordBatch.from_arrays(cols, names=names)
