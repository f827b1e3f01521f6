"""Scoring a Dask DataFrame partition by partition: :func:`score_dask`."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pyarrow as pa

from anoean.data.tables import DataError
from anoean.distributed._deps import require
from anoean.distributed.payload import ModelPayload, materialise, model_payload
from anoean.serve.batch import (
    ALARM_COLUMN,
    ERROR_COLUMN,
    ON_ERROR,
    SCORE_COLUMN,
    _check_columns,
    score_batch,
)
from anoean.serve.pipeline import Pipeline


def score_dask(
    ddf: Any,
    model: str | os.PathLike[str] | Pipeline,
    *,
    on_error: str = "fail",
    strict_categories: bool | None = None,
    engine: str | None = None,
) -> Any:
    """Score a Dask DataFrame: the same partitions with ``anomaly_score`` and ``is_anomaly``
    appended (and ``score_error`` with ``on_error="flag"``).

    It is lazy, like any Dask DataFrame operation: nothing runs until the result is
    computed or written. Each partition is converted to Arrow and scored with
    :func:`anoean.serve.batch.score_batch` (so the rules for unscorable rows are those of
    single-process scoring), through ``map_partitions`` with an explicit ``meta``. The
    partitions, their index and their row order are kept.

    The model travels as data: the bytes of the model directory's files, in one delayed
    object that each worker receives once (and loads once per process: see
    :mod:`anoean.distributed.payload`); no task captures its own copy, and no torch object
    is pickled.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Raw rows, with at least the columns the model was fitted on; other columns are kept
        as they are.
    model : path or Pipeline
        A model directory, or a loaded :class:`~anoean.serve.pipeline.Pipeline` (saved to
        bytes first).
    on_error : {"fail", "flag"}
        A row that cannot be scored: stop with a :class:`~anoean.data.tables.DataError`
        naming the partition, the row in it and the column (``"fail"``), or keep it with a
        missing (NaN) score, ``is_anomaly`` true and the reason in ``score_error``
        (``"flag"``).
    strict_categories : bool, optional
        Treat categories not seen in fit as unscorable (default: as chosen in fit).
    engine : {"auto", "torch", "numpy", "onnx"}, optional
        How the workers compute scores. Default: the pipeline's engine for a loaded
        pipeline, ``"auto"`` for a model directory.

    Returns
    -------
    dask.dataframe.DataFrame
        ``anomaly_score`` is float64 (NaN where a row could not be scored, with
        ``on_error="flag"``), ``is_anomaly`` is bool, ``score_error`` is a string column.

    Raises
    ------
    DataError
        Before anything is computed: a column the model needs is missing, or the input
        already has one of the output columns.
    ImportError
        dask is not installed (``pip install 'anoean[distributed]'``).
    """
    dask = require("dask")
    require("dask.dataframe")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    if engine is None:
        engine = model.engine if isinstance(model, Pipeline) else "auto"
    payload = model_payload(model)
    pipe = materialise(payload, engine)  # checks the payload here, before any task runs
    names = [str(c) for c in ddf.columns]
    outputs = [SCORE_COLUMN, ALARM_COLUMN] + ([ERROR_COLUMN] if on_error == "flag" else [])
    clash = [c for c in outputs if c in names]
    if clash:
        raise DataError(
            f"the Dask DataFrame already has column(s) {clash}, which scoring appends; "
            "rename or drop them"
        )
    _check_columns(pipe, names, "the Dask DataFrame")
    meta = _with_scores(
        ddf._meta,
        np.zeros(0, dtype=np.float64),
        np.zeros(0, dtype=bool),
        pa.array([], pa.string()) if on_error == "flag" else None,
    )
    shared = dask.delayed(payload, pure=True)  # one node in the graph, sent once per worker
    return ddf.map_partitions(
        _score_partition,
        shared,
        on_error=on_error,
        strict_categories=strict_categories,
        engine=engine,
        meta=meta,
    )


def _with_scores(pdf: Any, scores: np.ndarray, alarms: np.ndarray, errors: Any) -> Any:
    """``pdf`` (pandas) with the output columns appended, its index kept."""
    out = pdf.copy(deep=False)
    out[SCORE_COLUMN] = scores
    out[ALARM_COLUMN] = alarms
    if errors is not None:
        err = errors.to_pandas()
        err.index = pdf.index
        out[ERROR_COLUMN] = err
    return out


def _score_partition(
    pdf: Any,
    payload: ModelPayload,
    *,
    on_error: str,
    strict_categories: bool | None,
    engine: str,
    partition_info: dict[str, Any] | None = None,
) -> Any:
    """Score one pandas partition (run on a worker): pandas -> Arrow -> score -> pandas."""
    pipe = materialise(payload, engine)
    number = (partition_info or {}).get("number")
    source = f"partition {number}" if number is not None else "partition"
    table = pa.Table.from_pandas(pdf[pipe.preprocessor.input_columns_], preserve_index=False)
    with warnings.catch_warnings():
        # unknown categories are encoded as all-zero, as in single-process scoring; the
        # warning would only reach the worker's log
        warnings.simplefilter("ignore", UserWarning)
        scored = score_batch(
            pipe,
            table,
            on_error=on_error,
            strict_categories=strict_categories,
            source=source,
        )
    scores = scored.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)
    alarms = scored.column(ALARM_COLUMN).to_numpy(zero_copy_only=False).astype(bool)
    errors = scored.column(ERROR_COLUMN) if on_error == "flag" else None
    return _with_scores(pdf, scores, alarms, errors)
