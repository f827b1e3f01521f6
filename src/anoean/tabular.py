"""Reading and writing table files (CSV, Parquet) for the command line, with pyarrow.

* :func:`read_table` reads a whole file (for ``fit``, ``evaluate``, ``report``);
  :func:`iter_batches` streams one in bounded-memory record batches (for ``score``).
* :func:`parse_labels` turns a label column into 0 (normal) / 1 (anomaly).
* :func:`find_bad_rows` finds the rows a fitted preprocessor cannot encode (missing, NaN or
  infinite numbers, unknown categories under the strict policy), vectorised, with a reason
  per bad row.
* :class:`AtomicTableWriter` writes to a temporary file next to the destination and renames
  it into place only when everything was written, so a failure never leaves a half-written
  output file.

Every problem raises :class:`DataError` (a ``ValueError``) whose message names the file, and
where it applies the column and the row. Rows are numbered from 0 in data order (the first
row after a CSV header is row 0); for CSV files the line number is given too, counting the
header as line 1 (exact unless a quoted field spans several lines).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger("anoean")

#: label spellings accepted without a mapping (compared case-insensitively)
NORMAL_TOKENS = ("0", "false", "normal")
ANOMALY_TOKENS = ("1", "true", "anomaly")

#: rows per streamed batch: ~15 MB of float32 features for 120 features, so the few
#: batches in flight stay far below a 1 GB budget, and large enough that per-batch
#: overheads vanish
DEFAULT_BATCH_ROWS = 32768

# a number as pyarrow's string -> float cast accepts it (only used to locate a bad value)
_NUMBER_RE = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|nan|inf|infinity)\s*$"


class DataError(ValueError):
    """A data file cannot be used as given; the message names the file, column and row."""


# --------------------------------------------------------------------------- formats
def file_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, from the file name (``.csv[.gz]``, ``.parquet``, ``.pq``)."""
    name = Path(path).name.lower()
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".txt", ".txt.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(f"{path}: unknown file type; use a .csv (optionally .gz) or .parquet file name")


def where(row: int, fmt: str) -> str:
    """``row 12`` (Parquet) or ``row 12 (CSV line 14)``."""
    return f"row {row} (CSV line {row + 2})" if fmt == "csv" else f"row {row}"


def _csv_parse_error(path: Path, exc: Exception) -> DataError:
    """Explain a CSV parse failure with the line number (re-reading on one thread to get it)."""
    import pyarrow.csv as pacsv

    found: list[Any] = []

    def handler(row: Any) -> str:
        found.append(row)
        return "error"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
        )
        for _ in reader:
            pass
    except (pa.ArrowInvalid, OSError):
        pass
    if found:
        r = found[0]
        return DataError(
            f"{path}: malformed CSV at line {r.number}: expected {r.expected_columns} fields, "
            f"got {r.actual_columns}: {r.text[:200]!r}"
        )
    return DataError(f"{path}: cannot parse as CSV: {exc}")


def _conversion_error(path: Path, exc: Exception, column_types: dict[str, Any]) -> DataError:
    """Locate a value that could not be converted to a number (error path only)."""
    import pyarrow.csv as pacsv

    m = re.search(r"column #(\d+)", str(exc))
    try:
        header = pacsv.open_csv(path).schema.names
    except (pa.ArrowInvalid, OSError):
        header = []
    if m and int(m.group(1)) < len(header):
        name = header[int(m.group(1))]
        col = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                include_columns=[name],
                column_types={name: pa.string()},
                null_values=[""],  # as in the failed read: only an empty field is missing
                strings_can_be_null=True,
            ),
        ).column(name)
        ok = pc.or_(pc.match_substring_regex(col, _NUMBER_RE, ignore_case=True), pc.is_null(col))
        bad = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
        if bad.size:
            row = int(bad[0])
            return DataError(
                f"{path}: column {name!r}, {where(row, 'csv')}: non-numeric value "
                f"{col[row].as_py()!r} in a numeric column"
            )
        return DataError(f"{path}: column {name!r}: {exc}")
    return DataError(f"{path}: {exc}")


# --------------------------------------------------------------------------- reading
def read_table(
    path: str | os.PathLike[str], *, column_types: dict[str, pa.DataType] | None = None
) -> pa.Table:
    """Read a whole CSV or Parquet file.

    Raises
    ------
    DataError
        The file is missing, unreadable, malformed (with the CSV line), or holds no rows.
    """
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "csv":
        import pyarrow.csv as pacsv

        try:
            table = pacsv.read_csv(path, convert_options=_convert_options(column_types or {}))
        except pa.ArrowInvalid as exc:
            raise _explain_csv_error(path, exc, column_types or {}) from exc
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
    if table.num_rows == 0:
        raise DataError(f"{path}: the file holds no data rows")
    return table


def _convert_options(column_types: dict[str, pa.DataType]) -> Any:
    """Only an empty field is missing: "NaN", "NA" or "null" stay what they say, so a NaN is
    reported as a NaN and "NA" in a categorical column is a category, never a silent null."""
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        column_types=column_types, null_values=[""], strings_can_be_null=False
    )


def _explain_csv_error(path: Path, exc: Exception, column_types: dict[str, Any]) -> DataError:
    text = str(exc)
    if "Empty CSV file" in text:
        return DataError(f"{path}: the file is empty (no header, no data rows)")
    if "conversion error" in text:
        return _conversion_error(path, exc, column_types)
    return _csv_parse_error(path, exc)


def csv_header(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a CSV file (reads only the first block)."""
    import pyarrow.csv as pacsv

    try:
        return list(pacsv.open_csv(path).schema.names)
    except pa.ArrowInvalid as exc:
        raise _explain_csv_error(Path(path), exc, {}) from exc


def iter_batches(
    path: str | os.PathLike[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    column_types: dict[str, pa.DataType] | None = None,
    dictionary_columns: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV or Parquet file as record batches of about ``batch_rows`` rows.

    Memory stays bounded by a few batches whatever the file size. ``column_types`` fixes
    the types of CSV columns (so that a column the model reads as numbers is not inferred
    as integers from the first block and then fails on a later one). ``dictionary_columns``
    are read dictionary-encoded from Parquet (categories repeat: decoding them once per
    row group and writing them back as dictionaries is several times cheaper than strings).

    Raises
    ------
    DataError
        As :func:`read_table`; a file with no data rows included.
    """
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    n = 0
    if fmt == "csv":
        import pyarrow.csv as pacsv

        types = column_types or {}
        try:
            header = csv_header(path)
            reader = pacsv.open_csv(
                path,
                # ~150 bytes per flow record: blocks of about batch_rows rows
                read_options=pacsv.ReadOptions(block_size=max(1 << 20, 150 * batch_rows)),
                convert_options=_convert_options({k: v for k, v in types.items() if k in header}),
            )
            for batch in reader:
                n += batch.num_rows
                yield batch
        except pa.ArrowInvalid as exc:
            raise _explain_csv_error(path, exc, types) from exc
    else:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            names = set(pf.schema_arrow.names)
            as_dict = [
                c
                for c in dictionary_columns
                if c in names and pa.types.is_string(pf.schema_arrow.field(c).type)
            ]
            if as_dict:
                pf = pq.ParquetFile(path, read_dictionary=as_dict)
            for batch in pf.iter_batches(batch_size=batch_rows):
                n += batch.num_rows
                yield batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
    if n == 0:
        raise DataError(f"{path}: the file holds no data rows")


def parquet_schema(path: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc


# --------------------------------------------------------------------------- labels
def parse_labels(
    column: pa.Array | pa.ChunkedArray,
    *,
    anomaly_values: Sequence[str] = (),
    normal_values: Sequence[str] = (),
    name: str = "label",
    source: str = "data",
    fmt: str = "parquet",
) -> np.ndarray:
    """Turn a label column into int64 0 (normal) / 1 (anomaly).

    Without a mapping the accepted values are booleans, the numbers 0 and 1, and the strings
    ``0/1``, ``false/true``, ``normal/anomaly`` (any case, surrounding spaces ignored).

    With ``anomaly_values`` only, rows equal to one of them are anomalies and all others are
    normal; with ``normal_values`` only, the reverse; with both, any value in neither list is
    an error. Values are compared as text, case-insensitively (``--normal-value normal`` maps
    NSL-KDD's attack names to anomalies). How many rows each distinct value gave is logged.

    Raises
    ------
    DataError
        A missing label, or a value outside the accepted set (naming the row and the value).

    Examples
    --------
    >>> import pyarrow as pa
    >>> parse_labels(pa.array(["normal", "Anomaly", "0", "TRUE"])).tolist()
    [0, 1, 0, 1]
    >>> parse_labels(pa.array(["normal", "smurf", "neptune"]), normal_values=["normal"]).tolist()
    [0, 1, 1]
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{source}: label column {name!r} has a missing value at {where(row, fmt)}")
    if pa.types.is_boolean(column.type) and not (anomaly_values or normal_values):
        return column.to_numpy(zero_copy_only=False).astype(np.int64)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    if anomaly_values or normal_values:
        is_a = pc.is_in(
            text, value_set=pa.array([str(v).strip().lower() for v in anomaly_values], pa.string())
        )
        is_n = pc.is_in(
            text, value_set=pa.array([str(v).strip().lower() for v in normal_values], pa.string())
        )
        a = is_a.to_numpy(zero_copy_only=False)
        nrm = is_n.to_numpy(zero_copy_only=False)
        if anomaly_values and normal_values:
            neither = ~(a | nrm)
            if neither.any():
                row = int(np.flatnonzero(neither)[0])
                raise DataError(
                    f"{source}: label column {name!r} has the value {column[row].as_py()!r} at "
                    f"{where(row, fmt)}, which is neither an --anomaly-value "
                    f"{list(anomaly_values)} nor a --normal-value {list(normal_values)}"
                )
            y = a.astype(np.int64)
        elif anomaly_values:
            y = a.astype(np.int64)
        else:
            y = (~nrm).astype(np.int64)
        for v in [*anomaly_values, *normal_values]:
            if not pc.any(pc.equal(text, str(v).strip().lower())).as_py():
                logger.warning("%s: label value %r does not occur in column %r", source, v, name)
        if logger.isEnabledFor(logging.INFO):
            _log_label_mapping(text, y, name, source)
        return y
    is_n = pc.is_in(text, value_set=pa.array(NORMAL_TOKENS)).to_numpy(zero_copy_only=False)
    is_a = pc.is_in(text, value_set=pa.array(ANOMALY_TOKENS)).to_numpy(zero_copy_only=False)
    if not (is_n | is_a).all():
        row = int(np.flatnonzero(~(is_n | is_a))[0])
        raise DataError(
            f"{source}: label column {name!r} has the value {column[row].as_py()!r} at "
            f"{where(row, fmt)}; labels must be 0/1, true/false or normal/anomaly, or be mapped "
            "with --anomaly-value / --normal-value"
        )
    return is_a.astype(np.int64)


def _log_label_mapping(text: pa.Array, y: np.ndarray, name: str, source: str) -> None:
    counts = pc.value_counts(text).to_pylist()
    if len(counts) > 50:
        logger.info("%s: %d distinct labels in %r", source, len(counts), name)
        return
    first = {}
    uniq, idx = np.unique(
        np.asarray(text.to_numpy(zero_copy_only=False), dtype=object), return_index=True
    )
    for u, i in zip(uniq, idx, strict=True):
        first[u] = int(y[i])
    for c in counts:
        logger.info(
            "%s: label %r -> %s (%d rows)",
            source,
            c["values"],
            "anomaly" if first[c["values"]] else "normal",
            c["counts"],
        )


# --------------------------------------------------------------------------- bad rows
def find_bad_rows(
    table: pa.Table | pa.RecordBatch,
    numeric: Sequence[str],
    categories: dict[str, Sequence[str] | None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Rows that cannot be encoded, and for each the first reason, without Python row loops.

    Parameters
    ----------
    table : pyarrow Table or RecordBatch
        Holds every column named in ``numeric`` and ``categories``.
    numeric : sequence of str
        Columns that must hold finite numbers: a missing value, NaN, infinity or a text
        that is not a number makes the row bad.
    categories : dict of column -> known categories, optional
        Categorical columns checked strictly: a missing value or a category not in the list
        makes the row bad. Pass ``{column: None}`` to check only for missing values.

    Returns
    -------
    mask : ndarray of bool, shape (n_rows,)
    reasons : dict of row -> "column 'x': NaN" (the first problem found in that row)
    """
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    per_col: list[tuple[str, np.ndarray, Any]] = []
    for c in numeric:
        col = table.column(c)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        t = col.type
        if pa.types.is_floating(t):
            vals = col.to_numpy(zero_copy_only=False)  # nulls become NaN
            bad = ~np.isfinite(vals)
            if bad.any():
                per_col.append((c, bad, col))
        elif pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
            if col.null_count:
                per_col.append((c, col.is_null().to_numpy(zero_copy_only=False), col))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            ok = pc.match_substring_regex(col, _NUMBER_RE, ignore_case=True)
            ok = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
            vals = pc.cast(pc.if_else(ok, col, pa.scalar("nan")), pa.float64()).to_numpy()
            bad = ~np.isfinite(vals)
            if bad.any():
                per_col.append((c, bad, col))
        else:
            per_col.append((c, np.ones(n, dtype=bool), col))
    for c, known in (categories or {}).items():
        col = table.column(c)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        bad = col.is_null().to_numpy(zero_copy_only=False)
        if known is not None:
            text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
            idx = pc.index_in(text, value_set=pa.array([str(k) for k in known], pa.string()))
            bad = bad | idx.is_null().to_numpy(zero_copy_only=False)
        if bad.any():
            per_col.append((c, bad, col))
    reasons: dict[int, str] = {}
    for c, bad, col in per_col:
        mask |= bad
        for r in np.flatnonzero(bad)[:1000].tolist():  # error path: reasons for the first rows
            if r not in reasons:
                reasons[r] = f"column {c!r}: {_describe(col[r].as_py(), c in (categories or {}))}"
    return mask, reasons


def _describe(value: Any, categorical: bool) -> str:
    if value is None:
        return "missing value"
    if categorical:
        return f"unknown category {value!r}"
    if isinstance(value, float):
        return "NaN" if np.isnan(value) else f"infinite value {value!r}"
    return f"non-numeric value {value!r}"


# --------------------------------------------------------------------------- writing
class AtomicTableWriter:
    """Write record batches to CSV or Parquet through a temporary file, renamed on success.

    Use as a context manager: on an exception the temporary file is removed and the
    destination is left untouched (an existing file there keeps its old content).

    Examples
    --------
    >>> import pyarrow as pa, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with AtomicTableWriter(os.path.join(d, "out.parquet")) as w:
    ...     w.write(pa.record_batch({"a": [1, 2]}))
    >>> sorted(os.listdir(d))
    ['out.parquet']
    """

    def __init__(self, path: str | os.PathLike[str], *, compression: str = "snappy") -> None:
        self.path = Path(path)
        self.format = file_format(self.path)
        self.compression = compression
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._writer: Any = None
        self.rows = 0

    def __enter__(self) -> AtomicTableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._writer is None:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(
                    self.tmp, batch.schema, compression=self.compression
                )
            else:
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(self.tmp, batch.schema)
        if isinstance(batch, pa.Table):
            self._writer.write_table(batch)
        else:
            self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                if self._writer is None:
                    raise DataError(f"{self.path}: nothing to write")
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
