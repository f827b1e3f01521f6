"""The streaming stages of :func:`anoean.serve.scoring.score_file`: a thread that reads ahead
(:func:`prefetch`), the number of batches scored at once (:func:`score_workers`), and the
ordered pipeline (:func:`run_ordered`) that scores batches in a small thread pool and writes
them back in file order from one writer thread, through an
:class:`~anoean.data.tables.AtomicTableWriter`.

pyarrow, numpy and ONNX Runtime release the GIL, so the stages run on all cores while memory
stays bounded by a few batches.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.tables import AtomicTableWriter, parquet_schema
from anoean.serve.batch import SCORE_COLUMN
from anoean.serve.pipeline import Pipeline


def prefetch(it: Iterator[Any], depth: int) -> Iterator[Any]:
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


def score_workers(pipe: Pipeline) -> int:
    """Batches scored at once: one per core (up to 4, to bound memory) for the numpy and
    ONNX engines, which run one thread per call; one for torch, which threads inside."""
    if pipe.engine == "torch":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def restore_types(
    src: str | os.PathLike[str], fmt: str, categorical: Sequence[str]
) -> dict[str, pa.DataType]:
    """The types to cast the categorical columns of a Parquet ``src`` back to on output.

    They are read dictionary-encoded (cheaper); the output keeps the input's types, so they
    are cast back, in the writer thread (~0.05 s per 1M rows). Empty for CSV input."""
    restore: dict[str, pa.DataType] = {}
    if fmt == "parquet":
        schema = parquet_schema(src)
        restore = {
            c: schema.field(c).type
            for c in categorical
            if c in schema.names and not pa.types.is_dictionary(schema.field(c).type)
        }
    return restore


def _restored(batch: pa.RecordBatch, restore: dict[str, pa.DataType]) -> pa.RecordBatch:
    """``batch`` with the ``restore`` columns cast back to their input types."""
    if not restore:
        return batch
    cols = [
        pc.cast(col, restore[name]) if name in restore and col.type != restore[name] else col
        for name, col in zip(batch.schema.names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def run_sequential(
    batches: Iterator[pa.RecordBatch],
    out: str | os.PathLike[str],
    *,
    first: Callable[[pa.RecordBatch], None],
    score: Callable[[pa.RecordBatch, int], Any],
    collect: Callable[[int, Any], pa.RecordBatch],
    restore: dict[str, pa.DataType],
) -> int:
    """:func:`run_ordered` in the calling thread alone: read, score and write one batch at
    a time; the rows read.

    For a process that is given one core (a Dask worker's task slot,
    :mod:`anoean.distributed`): no reader, scoring or writer thread competes for it, so the
    work done is the work of one core. The same batches are scored, so the output is the
    same as :func:`run_ordered`'s; ``out`` is written atomically as there.
    """
    offset = 0
    with AtomicTableWriter(out, plain_columns=[SCORE_COLUMN]) as writer:
        for batch in batches:
            if offset == 0:
                first(batch)
            writer.write(_restored(collect(offset, score(batch, offset)), restore))
            offset += batch.num_rows
    return offset


def run_ordered(
    batches: Iterator[pa.RecordBatch],
    out: str | os.PathLike[str],
    *,
    first: Callable[[pa.RecordBatch], None],
    score: Callable[[pa.RecordBatch, int], Any],
    collect: Callable[[int, Any], pa.RecordBatch],
    workers: int,
    restore: dict[str, pa.DataType],
) -> int:
    """Stream ``batches`` through ``score`` into ``out``, in file order; the rows read.

    A thread reads one batch ahead; ``first(batch)`` checks the first batch, in the calling
    thread; ``score(batch, row_offset)`` runs in a pool of ``workers`` threads; each result
    is taken in file order, in the calling thread (where a batch's exception is re-raised,
    which stops the stream), by ``collect(row_offset, result)``, which returns the batch to
    write; one writer thread writes it, with the ``restore`` types cast back, at most one
    batch behind. On any error the pending work is cancelled and ``out`` is left untouched.
    """
    scoring: deque[tuple[int, Future[Any]]] = deque()
    writing: deque[Future[None]] = deque()

    def write(batch: pa.RecordBatch) -> None:
        writer.write(_restored(batch, restore))

    def drain_one(wpool: ThreadPoolExecutor) -> None:
        start, fut = scoring.popleft()
        scored = collect(start, fut.result())  # re-raises the batch's DataError, in file order
        writing.append(wpool.submit(write, scored))
        if len(writing) > 1:
            writing.popleft().result()

    offset = 0
    with (
        AtomicTableWriter(out, plain_columns=[SCORE_COLUMN]) as writer,
        ThreadPoolExecutor(1, "anoean-writer") as wpool,
        ThreadPoolExecutor(workers, "anoean-score") as spool,
    ):
        try:
            for batch in prefetch(batches, depth=1):
                if offset == 0:
                    first(batch)
                fut = spool.submit(score, batch, offset)
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
    return offset
