"""Scoring raw rows with a model directory: one batch (:func:`score_batch`), or a whole file
streamed in bounded memory (:func:`score_file`).

:func:`score_batch` is a pure function of a model and a batch: a model directory is loaded
once per process (:func:`anoean.serve.pipeline.get_pipeline`), so a distributed engine can map it
over partitions. Both are re-exported by :mod:`anoean.serve.pipeline`.

:func:`score_batch` and the output columns live in :mod:`anoean.serve.batch` (imported from
here as before); the reader thread, the scoring pool and the ordered writer of
:func:`score_file` are in :mod:`anoean.serve.streaming`.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.core.datachecks import DataWarning
from anoean.data.tables import (
    DEFAULT_BATCH_ROWS,
    CsvOptions,
    file_format,
    iter_batches,
    where,
)
from anoean.serve.batch import (
    ALARM_COLUMN,
    ERROR_COLUMN,
    SCORE_COLUMN,
    _check_columns,
    _score_batch,
)
from anoean.serve.batch import ON_ERROR as ON_ERROR
from anoean.serve.batch import score_batch as score_batch
from anoean.serve.pipeline import Pipeline, get_pipeline
from anoean.serve.streaming import restore_types, run_ordered, run_sequential, score_workers

logger = logging.getLogger("anoean")


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
    threads: int | None = None,
    progress: bool = False,
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

    ``threads`` sets the number of batches scored at once (default: one per core, up to 4,
    for the numpy and ONNX engines; one for torch); ``threads=1`` does everything in the
    calling thread, one batch at a time (no reader or writer thread either), for a process
    given one core, such as a Dask worker's task (:mod:`anoean.distributed`). The scores are
    the same either way.

    ``progress`` shows a bar of the rows scored on stderr (tqdm; the total is known for
    Parquet, from its metadata, not for CSV).
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1; got {threads}")
    t0 = time.perf_counter()
    check_output(src, out, overwrite=overwrite)
    pipe = get_pipeline(model, engine=engine)
    fmt = file_format(src)
    categorical = pipe.preprocessor.categorical_columns_
    batches = iter_batches(
        src,
        batch_rows=batch_rows,
        column_types=read_types(pipe),
        dictionary_columns=categorical,
        csv=csv,
    )
    workers = score_workers(pipe)
    restore = restore_types(src, fmt, categorical)
    tally = _Tally()

    def first(batch: pa.RecordBatch) -> None:
        extra = _check_columns(pipe, batch.schema.names, str(src))
        if extra:
            warnings.warn(
                f"{src}: column(s) {extra} were not seen in fit; they are ignored "
                "(copied to the output unchanged)",
                UserWarning,
                stacklevel=4,  # first <- run_ordered/run_sequential <- score_file <- caller
            )

    def score(batch: pa.RecordBatch, offset: int) -> tuple[pa.RecordBatch, dict[str, int]]:
        return _score_batch(
            pipe,
            batch,
            on_error=on_error,
            strict_categories=strict_categories,
            source=str(src),
            fmt=fmt,
            row_offset=offset,
        )

    bar = _progress_bar(src, fmt, progress)

    def collect(start: int, result: tuple[pa.RecordBatch, dict[str, int]]) -> pa.RecordBatch:
        scored = tally.add(start, result)
        bar.update(scored.num_rows)
        return scored

    try:
        if threads == 1:
            rows = run_sequential(
                batches, out, first=first, score=score, collect=collect, restore=restore
            )
        else:
            rows = run_ordered(
                batches,
                out,
                first=first,
                score=score,
                collect=collect,
                workers=threads or workers,
                restore=restore,
            )
    finally:
        bar.close()
    tally.report(src, fmt)
    return ScoreSummary(
        rows,
        tally.alarms,
        tally.unscored,
        tally.unscored_rows,
        time.perf_counter() - t0,
        Path(out),
        dict(sorted(tally.unknown.items())),
    )


def _progress_bar(src: str | os.PathLike[str], fmt: str, show: bool) -> Any:
    """A tqdm bar of rows on stderr (disabled unless ``show``), with the Parquet row count."""
    from tqdm.auto import tqdm

    total = None
    if show and fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(src).metadata.num_rows
        except (OSError, pa.ArrowException):
            total = None  # the reader reports the problem itself
    return tqdm(
        total=total,
        disable=not show,
        unit="rows",
        unit_scale=True,
        desc=f"scoring {Path(src).name}",
        leave=False,
        mininterval=0.5,
    )


@dataclass
class _Tally:
    """What :func:`score_file` counts as the scored batches come back in file order."""

    alarms: int = 0
    unscored: int = 0
    unscored_rows: list[int] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)

    def add(self, start: int, result: tuple[pa.RecordBatch, dict[str, int]]) -> pa.RecordBatch:
        """Count one scored batch (its first row is row ``start`` of the file); return it."""
        scored, counts = result
        for c, k in counts.items():
            self.unknown[c] = self.unknown.get(c, 0) + k
        self.alarms += int(pc.sum(scored.column(ALARM_COLUMN)).as_py() or 0)
        score_col = scored.column(SCORE_COLUMN)
        if score_col.null_count:
            bad = np.flatnonzero(score_col.is_null().to_numpy(zero_copy_only=False)) + start
            self.unscored += bad.size
            self.unscored_rows.extend(bad[: max(0, 1000 - len(self.unscored_rows))].tolist())
        return scored

    def report(self, src: str | os.PathLike[str], fmt: str) -> None:
        """Warn once per file about unknown categories; log the rows that were not scored."""
        for c, k in self.unknown.items():
            warnings.warn(
                f"{src}: column {c!r} holds {k} value(s) not seen in fit, encoded as all-zero "
                "(--strict-categories refuses them)",
                DataWarning,
                stacklevel=3,  # report <- score_file <- its caller
            )
        if self.unscored:
            logger.info(  # the caller gets them in ScoreSummary; the CLI prints them
                "%s: %d row(s) could not be scored (null anomaly_score, reason in %r): %s%s",
                src,
                self.unscored,
                ERROR_COLUMN,
                ", ".join(where(r, fmt) for r in self.unscored_rows[:10]),
                " ..." if self.unscored > 10 else "",
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
