"""Scoring raw rows with a model directory: one batch (:func:`score_batch`), or a whole file
streamed in bounded memory (:func:`score_file`).

:func:`score_batch` is a pure function of a model and a batch: a model directory is loaded
once per process (:func:`anoean.serve.pipeline.get_pipeline`), so a distributed engine can map it
over partitions. Both are re-exported by :mod:`anoean.serve.pipeline`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.core.datachecks import DataWarning
from anoean.data.tables import (
    DEFAULT_BATCH_ROWS,
    AtomicTableWriter,
    CsvOptions,
    DataError,
    file_format,
    iter_batches,
    parquet_schema,
    where,
)
from anoean.serve.pipeline import Pipeline, get_pipeline

logger = logging.getLogger("anoean")

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
    pre = pipe.preprocessor
    batch = _as_batch(batch)
    _check_columns(pipe, batch.schema.names, source)
    for name in (SCORE_COLUMN, ALARM_COLUMN):
        if name in batch.schema.names:
            raise DataError(f"{source}: the input already has a column {name!r}; rename or drop it")
    if strict_categories is None:
        strict_categories = pre.unknown == "error"
    mask, reasons = pipe.unscorable_rows(batch, strict_categories=strict_categories)
    n = batch.num_rows
    unknown: dict[str, int] = {}

    def stop(row: int, count: int) -> DataError:
        extra = f" ({count} such rows in this batch)" if count > 1 else ""
        return DataError(
            f"{source}: {where(row_offset + row, fmt)}, {reasons[row]}{extra}; use "
            "--on-error flag (on_error='flag') to score the other rows and mark these"
        )

    if mask.any() and on_error == "fail":
        raise stop(int(np.flatnonzero(mask)[0]), int(mask.sum()))
    scores = np.zeros(n, dtype=np.float64)
    good = ~mask
    if good.any():
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
                raise stop(first, int(bad.size))
        scores[idx] = np.where(finite, s, 0.0)
    null = mask if mask.any() else None
    score_arr = pa.array(np.where(mask, 0.0, scores), mask=null)
    # a row that cannot be scored is marked as an anomaly, so it is never passed as normal
    alarm = pa.array(mask | (~mask & (scores > pipe.threshold)))
    cols, names = list(batch.columns), list(batch.schema.names)
    cols += [score_arr, alarm]
    names += [SCORE_COLUMN, ALARM_COLUMN]
    if on_error == "flag":
        err = np.full(n, None, dtype=object)
        for r in np.flatnonzero(mask).tolist():
            err[r] = reasons.get(r, "cannot be scored")
        cols.append(pa.array(err, type=pa.string()))
        names.append(ERROR_COLUMN)
    return pa.RecordBatch.from_arrays(cols, names=names), unknown


@dataclass
class ScoreSummary:
    """What :func:`score_file` did: rows read and written, alarms raised (unscored rows
    included: they are marked as anomalies), rows that could not be scored (with
    ``on_error="flag"``; the first 1,000 row numbers), values of categorical columns not
    seen in fit (per column; encoded as all-zero), wall time."""

    rows: int
    alarms: int
    unscored: int
    unscored_rows: list[int]
    seconds: float
    output: Path
    unknown_categories: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``anoean score --json``)."""
        return {
            "rows": self.rows,
            "alarms": self.alarms,
            "unscored": self.unscored,
            "unscored_rows": list(self.unscored_rows),
            "unknown_categories": dict(self.unknown_categories),
            "seconds": self.seconds,
            "output": str(self.output),
        }


def read_types(pipe: Pipeline) -> dict[str, pa.DataType]:
    """CSV column types at score time: numbers as float64, categories as seen in fit."""
    pre = pipe.preprocessor
    types: dict[str, pa.DataType] = {c: pa.float64() for c in pre.numeric_columns_}
    fitted = pipe.meta.get("input_types", {})
    for c in pre.categorical_columns_:
        try:
            types[c] = pa.type_for_alias(fitted.get(c, "string"))
        except ValueError:
            types[c] = pa.string()
    return types


def _prefetch(it: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run iterator ``it`` in a background thread, ``depth`` items ahead (bounded memory).

    pyarrow releases the GIL while it reads and decodes, so reading overlaps scoring on a
    second core. An exception in the reader is re-raised in the consumer.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        # never block for good: the consumer may have stopped reading (an error downstream)
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in it:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    t = threading.Thread(target=work, name="anoean-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def _score_workers(pipe: Pipeline) -> int:
    """Batches scored at once: one per core (up to 4, to bound memory) for the numpy and
    ONNX engines, which run one thread per call; one for torch, which threads inside."""
    if pipe.engine == "torch":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def score_file(
    model: str | os.PathLike[str] | Pipeline,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    on_error: str = "fail",
    strict_categories: bool | None = None,
    engine: str = "auto",
    overwrite: bool = False,
    csv: CsvOptions | None = None,
) -> ScoreSummary:
    """Stream ``src`` through :func:`score_batch` into ``out`` (CSV or Parquet, by suffix).

    An existing ``out`` is refused (``FileExistsError``) unless ``overwrite=True``, and
    ``out`` may never be ``src`` itself. ``csv`` sets how a CSV ``src`` is read (separator,
    encoding, missing-value tokens; :class:`anoean.data.tables.CsvOptions`).

    Memory is bounded by a few batches: a thread reads ahead, batches are scored in a small
    thread pool, and one thread writes them back in order (pyarrow, numpy and ONNX Runtime
    release the GIL, so the stages run on all cores). The output is written to a temporary
    file and renamed into place at the end, so on any error no output file appears; the
    error reported is the first bad row in file order.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    t0 = time.perf_counter()
    check_output(src, out, overwrite=overwrite)
    pipe = get_pipeline(model, engine=engine)
    fmt = file_format(src)
    stats = {"alarms": 0, "unscored": 0}
    unscored_rows: list[int] = []
    unknown: dict[str, int] = {}
    batches = iter_batches(
        src,
        batch_rows=batch_rows,
        column_types=read_types(pipe),
        dictionary_columns=pipe.preprocessor.categorical_columns_,
        csv=csv,
    )
    workers = _score_workers(pipe)
    # categorical columns are read dictionary-encoded (cheaper); the output keeps the
    # input's types, so they are cast back, in the writer thread (~0.05 s per 1M rows)
    restore: dict[str, pa.DataType] = {}
    if fmt == "parquet":
        schema = parquet_schema(src)
        restore = {
            c: schema.field(c).type
            for c in pipe.preprocessor.categorical_columns_
            if c in schema.names and not pa.types.is_dictionary(schema.field(c).type)
        }

    def write(batch: pa.RecordBatch) -> None:
        if restore:
            cols = [
                pc.cast(col, restore[name])
                if name in restore and col.type != restore[name]
                else col
                for name, col in zip(batch.schema.names, batch.columns, strict=True)
            ]
            batch = pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
        writer.write(batch)

    scoring: deque[tuple[int, Future[pa.RecordBatch]]] = deque()
    writing: deque[Future[None]] = deque()

    def drain_one(wpool: ThreadPoolExecutor) -> None:
        start, fut = scoring.popleft()
        scored, counts = fut.result()  # re-raises the batch's DataError, in file order
        for c, k in counts.items():
            unknown[c] = unknown.get(c, 0) + k
        stats["alarms"] += int(pc.sum(scored.column(ALARM_COLUMN)).as_py() or 0)
        score_col = scored.column(SCORE_COLUMN)
        if score_col.null_count:
            bad = np.flatnonzero(score_col.is_null().to_numpy(zero_copy_only=False)) + start
            stats["unscored"] += bad.size
            unscored_rows.extend(bad[: max(0, 1000 - len(unscored_rows))].tolist())
        writing.append(wpool.submit(write, scored))
        if len(writing) > 1:
            writing.popleft().result()

    offset = 0
    with (
        AtomicTableWriter(out) as writer,
        ThreadPoolExecutor(1, "anoean-writer") as wpool,
        ThreadPoolExecutor(workers, "anoean-score") as spool,
    ):
        try:
            for batch in _prefetch(batches, depth=1):
                if offset == 0:
                    extra = _check_columns(pipe, batch.schema.names, str(src))
                    if extra:
                        warnings.warn(
                            f"{src}: column(s) {extra} were not seen in fit; they are ignored "
                            "(copied to the output unchanged)",
                            UserWarning,
                            stacklevel=2,
                        )
                fut = spool.submit(
                    _score_batch,
                    pipe,
                    batch,
                    on_error=on_error,
                    strict_categories=strict_categories,
                    source=str(src),
                    fmt=fmt,
                    row_offset=offset,
                )
                scoring.append((offset, fut))
                offset += batch.num_rows
                while len(scoring) >= workers:
                    drain_one(wpool)
            while scoring:
                drain_one(wpool)
            for f in writing:
                f.result()
        except BaseException:
            for _, f in scoring:
                f.cancel()
            for f in writing:
                f.cancel()
            raise
    for c, k in unknown.items():
        warnings.warn(
            f"{src}: column {c!r} holds {k} value(s) not seen in fit, encoded as all-zero "
            "(--strict-categories refuses them)",
            DataWarning,
            stacklevel=2,
        )
    if stats["unscored"]:
        logger.info(  # the caller gets them in ScoreSummary; the CLI prints them
            "%s: %d row(s) could not be scored (null anomaly_score, reason in %r): %s%s",
            src,
            stats["unscored"],
            ERROR_COLUMN,
            ", ".join(where(r, fmt) for r in unscored_rows[:10]),
            " ..." if stats["unscored"] > 10 else "",
        )
    return ScoreSummary(
        offset,
        stats["alarms"],
        stats["unscored"],
        unscored_rows,
        time.perf_counter() - t0,
        Path(out),
        dict(sorted(unknown.items())),
    )


def check_output(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Refuse an output path that exists (unless ``overwrite``) or that is the input file."""
    file_format(out)
    src_p, out_p = Path(src), Path(out)
    if out_p.exists() and src_p.exists() and os.path.samefile(src_p, out_p):
        raise FileExistsError(f"{out}: the output would replace the input file; choose another")
    if out_p.is_dir():
        raise FileExistsError(f"{out} is a directory; give a file name for the output")
    if out_p.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; pass --overwrite (overwrite=True) to replace it"
        )
