"""Scoring many files on a Dask cluster, one task per file: :func:`score_files_dask`
(``anoean score MODEL DATA... --out DIR --engine dask``).

Each task streams one input file through :func:`anoean.serve.scoring.score_file` (so the
scores, the per-row error policy and the bounded memory are those of single-process
scoring), in the calling thread only (one Dask thread = one core), into a staging folder
inside the output folder. When every task has succeeded the files are renamed into place,
one per input file and named after it; when any fails, or a worker dies too often, the
staging folder is removed and the output folder is left as it was, so no partial file ever
appears. A worker killed mid-file leaves only a temporary file in the staging folder; Dask
runs the task again elsewhere.

The input files and the output folder must be on a file system that the workers and this
process share (any folder on one machine, a network file system on a cluster).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from anoean.core.datachecks import DataWarning
from anoean.core.modelfile import ModelFileError
from anoean.data.tables import CsvOptions, DataError, csv_header, file_format, parquet_schema
from anoean.distributed._deps import require
from anoean.distributed.payload import ModelPayload, materialise, model_payload
from anoean.serve.batch import ALARM_COLUMN, SCORE_COLUMN, _check_columns
from anoean.serve.pipeline import Pipeline
from anoean.serve.scoring import score_file

logger = logging.getLogger("anoean")

#: prefix of the staging folder inside the output folder (removed when the job ends)
STAGING_PREFIX = ".anoean-dask-"
#: a file in the staging folder that tells the tasks still to start that the job stopped
STOP_MARKER = ".stop"


class ScoringJobError(RuntimeError):
    """The Dask job could not finish: a worker died too often while scoring a file, the
    cluster went away, or a task failed in a way that is not about the data."""


@dataclass
class FileResult:
    """What scoring one input file did (as :class:`anoean.serve.scoring.ScoreSummary`)."""

    source: str
    output: str
    rows: int
    alarms: int
    unscored: int
    unscored_rows: list[int]
    unknown_categories: dict[str, int]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "output": self.output,
            "rows": self.rows,
            "alarms": self.alarms,
            "unscored": self.unscored,
            "unscored_rows": list(self.unscored_rows),
            "unknown_categories": dict(self.unknown_categories),
            "seconds": self.seconds,
        }


@dataclass
class DaskScoreSummary:
    """What :func:`score_files_dask` did: totals over the files, each file's result (in
    input order), the wall time of the whole job (cluster start included), the workers it
    ran on and the model's threshold."""

    files: list[FileResult]
    seconds: float
    output: Path
    workers: int
    threads: int
    threshold: float
    unknown_categories: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def alarms(self) -> int:
        return sum(f.alarms for f in self.files)

    @property
    def unscored(self) -> int:
        return sum(f.unscored for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``anoean score --engine dask --json``)."""
        return {
            "rows": self.rows,
            "alarms": self.alarms,
            "unscored": self.unscored,
            "unknown_categories": dict(self.unknown_categories),
            "seconds": self.seconds,
            "output": str(self.output),
            "workers": self.workers,
            "threads": self.threads,
            "threshold": self.threshold,
            "files": [f.as_dict() for f in self.files],
        }


# --------------------------------------------------------------------------- inputs
def input_files(data: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The input files of ``data``: files as given, glob patterns expanded (sorted), and
    folders replaced by the Parquet files in them (sorted; else their CSV files).

    Raises
    ------
    FileNotFoundError
        A path that does not exist, or a pattern or folder that matches no file.
    """
    files: list[Path] = []
    for item in data:
        p = Path(item)
        if p.is_dir():
            found = _table_files(p)
            if not found:
                raise FileNotFoundError(f"{p}: the folder holds no .parquet or .csv file")
            files += found
        elif p.exists():
            files.append(p)
        elif glob.has_magic(str(item)):
            matched = sorted(Path(m) for m in glob.glob(str(item)) if Path(m).is_file())
            if not matched:
                raise FileNotFoundError(f"{item}: no file matches this pattern")
            files += matched
        else:
            raise FileNotFoundError(f"{item}: no such file")
    if not files:
        raise FileNotFoundError("no input files given")
    for f in files:
        file_format(f)  # an unknown suffix is refused before anything runs
    return files


def _table_files(folder: Path) -> list[Path]:
    entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for fmt in ("parquet", "csv"):
        found = [p for p in entries if _format_or_none(p) == fmt]
        if found:
            return found
    return []


def _format_or_none(path: Path) -> str | None:
    try:
        return file_format(path)
    except DataError:
        return None


def plan_outputs(files: Sequence[Path], out: Path, *, overwrite: bool = False) -> list[Path]:
    """The output file of each input: ``out / input name``.

    Raises
    ------
    FileExistsError
        ``out`` is a file; ``out`` is a folder that is not empty (without ``overwrite``);
        two inputs have the same name; an output would replace its input or a folder.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --out names a folder with --engine dask")
    if out.is_dir() and not overwrite and any(out.iterdir()):
        raise FileExistsError(
            f"{out} is not empty; pass --overwrite (overwrite=True) to replace the files of "
            "the same names in it (others are left alone), or choose an empty folder"
        )
    seen: dict[str, Path] = {}
    outputs = []
    for f in files:
        if f.name in seen:
            raise FileExistsError(
                f"{seen[f.name]} and {f} have the same name: their outputs would clash in {out}"
            )
        seen[f.name] = f
        dst = out / f.name
        if dst.exists() and os.path.samefile(dst, f):
            raise FileExistsError(f"{dst}: the output would replace the input file; choose another")
        if dst.is_dir():
            raise FileExistsError(f"{dst} is a folder; it cannot be replaced by an output file")
        outputs.append(dst)
    return outputs


def check_inputs(pipe: Pipeline, files: Sequence[Path], csv: CsvOptions | None = None) -> list[str]:
    """Check every input's columns from its header or footer, before any task runs; the
    warnings to show (columns not seen in fit, which are copied unchanged)."""
    notes = []
    for f in files:
        names = parquet_schema(f).names if file_format(f) == "parquet" else csv_header(f, csv=csv)
        for name in (SCORE_COLUMN, ALARM_COLUMN):
            if name in names:
                raise DataError(f"{f}: the input already has a column {name!r}; rename or drop it")
        extra = _check_columns(pipe, names, str(f))
        if extra:
            notes.append(
                f"{f}: column(s) {extra} were not seen in fit; they are ignored (copied to the "
                "output unchanged)"
            )
    return notes


# --------------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (an address such as
    ``tcp://host:8786``), or to a new ``LocalCluster`` of ``workers`` processes (default:
    one per CPU) of one thread each, closed at the end.

    Raises
    ------
    ValueError
        Both ``scheduler`` and ``workers`` given.
    ImportError
        dask.distributed is not installed (``pip install 'anoean[distributed]'``).
    """
    if scheduler is not None and workers is not None:
        raise ValueError("give --scheduler or --workers, not both (workers come with a scheduler)")
    distributed = require("distributed")
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    # the scheduler runs in this process: its routine INFO lines are not ours to print
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(max(logging.WARNING, level))
    try:
        with (
            distributed.LocalCluster(
                n_workers=workers or _cpus(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.WARNING,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
    finally:
        quiet.setLevel(level)


def _cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _worker_threads(client: Any) -> tuple[int, int]:
    """(workers, threads in all) of the cluster now."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return len(info), sum(int(w.get("nthreads", 1)) for w in info.values())


# --------------------------------------------------------------------------- the job
def score_files_dask(
    model: str | os.PathLike[str] | Pipeline | ModelPayload,
    data: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    on_error: str = "fail",
    strict_categories: bool | None = None,
    engine: str = "auto",
    batch_rows: int | None = None,
    overwrite: bool = False,
    csv: CsvOptions | None = None,
) -> DaskScoreSummary:
    """Score every input file on a Dask cluster, one task per file, into the folder ``out``.

    Parameters
    ----------
    model : path or Pipeline
        A model directory or a loaded pipeline; sent to the workers as bytes, once each.
    data : sequence of paths or glob patterns
        Parquet (or CSV) files, patterns such as ``"flows/*.parquet"``, or folders.
    out : path
        The output folder: one file per input, of the input's name and format, with every
        input row and column plus ``anomaly_score`` and ``is_anomaly``. It must be new or
        empty unless ``overwrite``, which replaces only the files of those names.
    client : distributed.Client, optional
        The cluster to use; else one is made by :func:`dask_client` from ``scheduler`` or
        ``workers``.
    on_error, strict_categories, batch_rows, csv
        As :func:`anoean.serve.scoring.score_file`.
    engine : {"auto", "torch", "numpy", "onnx"}
        How each worker computes the scores.

    Raises
    ------
    DataError
        A row cannot be scored (``on_error="fail"``; the message names the file, the row
        and the column) or a file cannot be read; nothing is written.
    ScoringJobError
        A worker died too often while scoring a file, or the cluster failed; nothing is
        written.
    """
    if on_error not in ("fail", "flag"):
        raise ValueError(f"on_error must be 'fail' or 'flag'; got {on_error!r}")
    t0 = time.perf_counter()
    files = input_files(data)
    out = Path(out)
    outputs = plan_outputs(files, out, overwrite=overwrite)
    payload = model_payload(model)
    pipe = materialise(payload, engine)
    for note in check_inputs(pipe, files, csv):
        warnings.warn(note, UserWarning, stacklevel=2)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers))
        elif scheduler is not None or workers is not None:
            raise ValueError("give a client, or a scheduler or a number of workers, not both")
        n_workers, n_threads = _worker_threads(client)
        results = _staged(
            client,
            payload,
            files,
            outputs,
            out,
            engine=engine,
            on_error=on_error,
            strict_categories=strict_categories,
            batch_rows=batch_rows,
            csv=csv,
        )
    unknown: dict[str, int] = {}
    for r in results:
        for c, k in r.unknown_categories.items():
            unknown[c] = unknown.get(c, 0) + k
            warnings.warn(  # as score_file warns in a single process
                f"{r.source}: column {c!r} holds {k} value(s) not seen in fit, encoded as "
                "all-zero (--strict-categories refuses them)",
                DataWarning,
                stacklevel=2,
            )
    return DaskScoreSummary(
        results,
        time.perf_counter() - t0,
        out,
        n_workers,
        n_threads,
        pipe.threshold,
        dict(sorted(unknown.items())),
    )


def _staged(
    client: Any,
    payload: ModelPayload,
    files: Sequence[Path],
    outputs: Sequence[Path],
    out: Path,
    **options: Any,
) -> list[FileResult]:
    """Run the job into a staging folder in ``out``; rename every file into place when all
    succeeded; remove the staging folder (and ``out`` when this made it) in any case."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging = out / f"{STAGING_PREFIX}{token}"
    staging.mkdir()
    try:
        results = _run(client, payload, files, staging, token, **options)
        for f, r, dst in zip(files, results, outputs, strict=True):
            os.replace(staging / f.name, dst)
            r.output = str(dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: the job failed before writing anything
    return results


def _run(
    client: Any,
    payload: ModelPayload,
    files: Sequence[Path],
    staging: Path,
    token: str,
    **options: Any,
) -> list[FileResult]:
    """Submit one task per file and wait for all; on the first failure cancel the rest and
    raise it (a :class:`DataError` as it is, a dead worker as :class:`ScoringJobError`)."""
    distributed = require("distributed")
    # the model as one task's result: each worker fetches it once, before its first file,
    # and the scheduler can compute it again if every worker holding it dies
    model = client.submit(_identity, payload, key=f"anoean-model-{payload.digest[:16]}-{token}")
    futures = {
        client.submit(
            _score_one_file,
            model,
            str(f),
            str(staging / f.name),
            key=f"anoean-score-{i}-{token}",
            pure=False,
            **options,
        ): i
        for i, f in enumerate(files)
    }
    results: list[FileResult | None] = [None] * len(files)
    try:
        for fut in distributed.as_completed(list(futures)):
            i = futures[fut]
            if fut.status == "error":
                raise _job_error(fut.exception(), files[i], distributed)
            if fut.status == "cancelled":
                raise ScoringJobError(f"{files[i]}: its task was cancelled; nothing was written")
            done = fut.result()
            if done is None:  # only after a stop, which comes with an error
                raise ScoringJobError(f"{files[i]}: its task was stopped; nothing was written")
            results[i] = FileResult(**done)
    except Exception:
        # a task already running cannot be interrupted, and would go on writing into the
        # staging folder once it is removed: tell the tasks to stop (those that start now
        # return at once), and wait for the running ones to end before cleaning up
        with contextlib.suppress(OSError):
            (staging / STOP_MARKER).touch()
        with contextlib.suppress(Exception):
            distributed.wait(list(futures))
        client.cancel([*futures, model], force=True)
        raise
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop without waiting
        with contextlib.suppress(OSError):
            (staging / STOP_MARKER).touch()
        client.cancel([*futures, model], force=True)
        raise
    return [r for r in results if r is not None]


def _job_error(exc: BaseException, src: Path, distributed: Any) -> BaseException:
    """The error to raise for the task of ``src`` that failed with ``exc``."""
    if isinstance(exc, distributed.KilledWorker):
        return ScoringJobError(
            f"{src}: the Dask workers running it died too often ({exc}); nothing was written. "
            "A worker that runs out of memory is restarted: try a smaller --batch-rows, or "
            "workers with more memory"
        )
    if isinstance(exc, (DataError, ModelFileError, OSError, ValueError, ImportError)):
        return exc
    return ScoringJobError(f"{src}: {type(exc).__name__}: {exc}; nothing was written")


def _identity(x: Any) -> Any:
    return x


_ONE_CORE: list[int] = []


def _limit_threads() -> None:
    """Size pyarrow's CPU and I/O thread pools to this worker's thread count, once per
    process, so a worker of one thread uses about one core (ONNX Runtime already runs one
    thread per session, and the nanny sets OMP/MKL/OpenBLAS to one thread)."""
    if _ONE_CORE:
        return
    import multiprocessing

    if multiprocessing.parent_process() is None:
        return  # not a worker process of a nanny (a thread-based cluster): not ours to size
    try:
        from distributed import get_worker

        n = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return  # not in a worker: leave the pools alone
    pa.set_cpu_count(max(1, n))
    pa.set_io_thread_count(max(1, n))
    _ONE_CORE.append(n)


def _score_one_file(
    payload: ModelPayload,
    src: str,
    dst: str,
    *,
    engine: str,
    on_error: str,
    strict_categories: bool | None,
    batch_rows: int | None,
    csv: CsvOptions | None,
) -> dict[str, Any] | None:
    """One task: score ``src`` into ``dst`` (written atomically) in this thread alone;
    nothing (None) when the job has stopped: its staging folder is gone or marked."""
    staging = Path(dst).parent
    if not staging.is_dir() or (staging / STOP_MARKER).exists():
        return None  # another file failed: write nothing, and do not recreate the folder
    _limit_threads()
    pipe = materialise(payload, engine)
    with warnings.catch_warnings():
        # counted in the summary and reported once by the caller
        warnings.simplefilter("ignore", UserWarning)
        kw: dict[str, Any] = {} if batch_rows is None else {"batch_rows": batch_rows}
        res = score_file(
            pipe,
            src,
            dst,
            on_error=on_error,
            strict_categories=strict_categories,
            csv=csv,
            threads=1,
            overwrite=False,
            **kw,
        )
    return {
        "source": src,
        "output": dst,
        "rows": res.rows,
        "alarms": res.alarms,
        "unscored": res.unscored,
        "unscored_rows": list(res.unscored_rows),
        "unknown_categories": dict(res.unknown_categories),
        "seconds": res.seconds,
    }
