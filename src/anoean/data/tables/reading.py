"""Reading CSV and Parquet files: whole (:func:`read_table`), streamed in record batches
(:func:`iter_batches`), or only their column names (:func:`csv_header`) or schema
(:func:`parquet_schema`); missing-value tokens in Parquet string columns become nulls."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.tables.checks import _check_binary, _check_head, _check_line_breaks, _names
from anoean.data.tables.csv_errors import _CSV_ERRORS, _explain_csv_error, _header
from anoean.data.tables.formats import (
    _ARROW_BLOCK_SIZE,
    CsvOptions,
    DataError,
    _check_names,
    _convert_options,
    _is_text,
    _open,
    _options,
    _parse_options,
    _read_options,
    file_format,
)

#: rows per streamed batch: ~30 MB of float32 features for 120 features, so the few
#: batches in flight stay far below a 1 GB budget, and large enough that per-batch
#: overheads vanish (scoring 5M NSL-KDD rows on 2 cores: 4.6 s and 8.4 CPU-s against 5.1 s
#: and 8.8 with 32,768 rows, 5.0 s with 131,072; peak RSS 600 MB; docs/benchmarks/score.md)
DEFAULT_BATCH_ROWS = 65536


def _null_tokens(data: Any, null_values: Sequence[str]) -> Any:
    """Replace the missing-value tokens in the string columns of a Parquet table or batch
    by nulls (vectorised; dictionary columns through their dictionaries)."""
    tokens = pa.array(list(dict.fromkeys(("", *null_values))), pa.string())
    cols = list(data.columns)
    schema = data.schema
    changed = False
    for i, col in enumerate(cols):
        new = _null_tokens_column(col, tokens)
        if new is not col:
            cols[i] = new
            schema = schema.set(i, schema.field(i).with_nullable(True))
            changed = True
    if not changed:
        return data
    if isinstance(data, pa.Table):
        return pa.Table.from_arrays(cols, schema=schema)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _null_tokens_column(col: Any, tokens: pa.Array) -> Any:
    t = col.type
    if isinstance(col, pa.ChunkedArray):
        if not (_is_text(t) or (pa.types.is_dictionary(t) and _is_text(t.value_type))):
            return col
        old = col.chunks  # (each access makes new wrappers)
        chunks = [_null_tokens_column(c, tokens) for c in old]
        if all(n is o for n, o in zip(chunks, old, strict=True)):
            return col
        return pa.chunked_array(chunks, type=t)
    if _is_text(t):
        hit = pc.is_in(col, value_set=tokens.cast(t))
        if not pc.any(hit).as_py():
            return col
        return pc.if_else(hit, pa.scalar(None, t), col)
    if pa.types.is_dictionary(t) and _is_text(t.value_type):
        hit = pc.is_in(col.dictionary, value_set=tokens.cast(t.value_type))
        if not pc.any(hit).as_py():
            return col
        rows = pc.fill_null(pc.take(hit, col.indices), False)
        indices = pc.if_else(rows, pa.scalar(None, col.indices.type), col.indices)
        return pa.DictionaryArray.from_arrays(indices, col.dictionary, ordered=t.ordered)
    return col


def _parquet_error(path: str | os.PathLike[str], exc: Exception) -> DataError:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        magic = b"PAR1"
    hint = ""
    if magic != b"PAR1":
        hint = " (it does not start with 'PAR1': a CSV file needs a .csv name)"
    return DataError(f"{path}: not a readable Parquet file{hint}: {exc}")


# --------------------------------------------------------------------------- reading
def read_table(
    path: str | os.PathLike[str],
    *,
    column_types: dict[str, pa.DataType] | None = None,
    csv: CsvOptions | None = None,
    progress: bool = False,
) -> pa.Table:
    """Read a whole CSV or Parquet file.

    ``csv`` says how a CSV file is read (default ``CsvOptions()``); its ``na_values`` also
    apply to the string columns of a Parquet file. Gzip or bzip2 content is recognised by
    its first bytes and decompressed, whatever the file's name. ``progress`` shows a bar on
    stderr (tqdm): of the file's bytes for a CSV file, of its rows (row group by row group)
    for a Parquet file; the table read is the same.

    Raises
    ------
    DataError
        The file is missing, unreadable, binary, malformed (with the CSV line), not valid
        text in the encoding (with the line and the byte), separated by another character
        than ``csv.sep``, has a row longer than the block size, has duplicated column names,
        or holds no rows.
    """
    path = Path(path)
    fmt = file_format(path)
    opts = _options(csv)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "csv":
        import pyarrow.csv as pacsv

        types = column_types or {}
        block = opts.block_size or _ARROW_BLOCK_SIZE
        _check_head(path, opts)
        try:
            with (
                _reading_bar(path, "B", path.stat().st_size, progress) as bar,
                _open(path, bar if progress else None) as f,
            ):
                table = pacsv.read_csv(
                    f,
                    read_options=_read_options(opts, block),
                    parse_options=_parse_options(opts),
                    convert_options=_convert_options(types, opts.null_values),
                )
        except _CSV_ERRORS as exc:
            raise _explain_csv_error(path, exc, types, opts, block) from exc
        _check_names(path, _names(path, table.schema, opts))
        _check_binary(path, table.schema, types, opts)
        _check_line_breaks(path, table, opts, block)
    else:
        import pyarrow.parquet as pq

        try:
            _check_names(path, pq.read_schema(path).names)
            table = _read_parquet(path) if progress else pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _parquet_error(path, exc) from exc
        table = _null_tokens(table, opts.null_values)
    if table.num_rows == 0:
        raise DataError(f"{path}: the file holds no data rows")
    return table


def _reading_bar(path: Path, unit: str, total: int, show: bool) -> Any:
    """A tqdm bar on stderr for reading ``path`` (disabled unless ``show``)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        disable=not show,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        desc=f"reading {path.name}",
        leave=False,
        mininterval=0.5,
    )


def _read_parquet(path: Path) -> pa.Table:
    """A Parquet file read row group by row group, moving a bar of its rows: the same table
    as ``pyarrow.parquet.read_table`` (the same schema, with the file's metadata)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    parts = []
    with _reading_bar(path, "rows", pf.metadata.num_rows, True) as bar:
        for i in range(pf.num_row_groups):
            part = pf.read_row_group(i)
            parts.append(part)
            bar.update(part.num_rows)
    if not parts:
        return pf.schema_arrow.empty_table()
    return pa.concat_tables(parts)


def csv_header(path: str | os.PathLike[str], *, csv: CsvOptions | None = None) -> list[str]:
    """The column names of a CSV file (reads only the first block), checked as by
    :func:`read_table`: binary data, another separator, duplicated names."""
    path = Path(path)
    opts = _options(csv)
    _check_head(path, opts)
    names = _header(path, opts, opts.block_size or _ARROW_BLOCK_SIZE, explain=True)
    _check_names(path, names)
    return names


def iter_batches(
    path: str | os.PathLike[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    column_types: dict[str, pa.DataType] | None = None,
    dictionary_columns: Sequence[str] = (),
    csv: CsvOptions | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV or Parquet file as record batches of about ``batch_rows`` rows.

    Memory stays bounded by a few batches whatever the file size. ``column_types`` fixes
    the types of CSV columns (so that a column the model reads as numbers is not inferred
    as integers from the first block and then fails on a later one). ``dictionary_columns``
    are read dictionary-encoded from Parquet (categories repeat: decoding them once per
    row group and writing them back as dictionaries is several times cheaper than strings).
    ``csv`` as in :func:`read_table`.

    Raises
    ------
    DataError
        As :func:`read_table`; a file with no data rows included.
    """
    path = Path(path)
    fmt = file_format(path)
    opts = _options(csv)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "csv":
        n = yield from _csv_batches(path, batch_rows, column_types or {}, opts)
    else:
        n = yield from _parquet_batches(path, batch_rows, dictionary_columns, opts)
    if n == 0:
        raise DataError(f"{path}: the file holds no data rows")


def _csv_batches(
    path: Path, batch_rows: int, types: dict[str, pa.DataType], opts: CsvOptions
) -> Generator[pa.RecordBatch, None, int]:
    """:func:`iter_batches` of a CSV file; returns the number of rows read."""
    import pyarrow.csv as pacsv

    n = 0
    # ~150 bytes per flow record: blocks of about batch_rows rows
    block = opts.block_size or max(1 << 20, 150 * batch_rows)
    _check_head(path, opts)
    header = _header(path, opts, block, explain=True)
    _check_names(path, header)
    try:
        with _open(path) as f:
            reader = pacsv.open_csv(
                f,
                read_options=_read_options(opts, block),
                parse_options=_parse_options(opts),
                convert_options=_convert_options(
                    {k: v for k, v in types.items() if k in header}, opts.null_values
                ),
            )
            _check_binary(path, reader.schema, types, opts)
            _names(path, reader.schema, opts)
            quotes_ok = False
            for batch in reader:
                if not quotes_ok:
                    quotes_ok = _check_line_breaks(path, batch, opts, block, n)
                n += batch.num_rows
                yield batch
    except _CSV_ERRORS as exc:
        raise _explain_csv_error(path, exc, types, opts, block) from exc
    return n


def _parquet_batches(
    path: Path, batch_rows: int, dictionary_columns: Sequence[str], opts: CsvOptions
) -> Generator[pa.RecordBatch, None, int]:
    """:func:`iter_batches` of a Parquet file; returns the number of rows read."""
    import pyarrow.parquet as pq

    n = 0
    try:
        pf = pq.ParquetFile(path)
        _check_names(path, pf.schema_arrow.names)
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
            yield _null_tokens(batch, opts.null_values)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _parquet_error(path, exc) from exc
    return n


def parquet_schema(path: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise _parquet_error(path, exc) from exc
