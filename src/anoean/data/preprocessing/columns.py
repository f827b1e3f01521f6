"""Columns as the preprocessor reads them: :func:`as_table` (the accepted table types to a
``pyarrow.Table``), a column as finite numbers or as category strings, with errors naming
the column and the first bad row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def as_table(table: Any) -> pa.Table:
    """Convert the accepted table types to a ``pyarrow.Table``.

    Parameters
    ----------
    table : pyarrow.Table, pyarrow.RecordBatch, mapping or pandas.DataFrame
        A mapping is column name -> array-like (numpy array, list, pyarrow array).

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    TypeError
        For any other type.
    ValueError
        When column names repeat or columns differ in length.
    """
    if isinstance(table, pa.Table):
        out = table
    elif isinstance(table, pa.RecordBatch):
        out = pa.Table.from_batches([table])
    elif isinstance(table, Mapping):
        cols = {}
        lengths = {}
        for name, values in table.items():
            arr = (
                values
                if isinstance(values, pa.Array | pa.ChunkedArray)
                else pa.array(np.asarray(values) if not isinstance(values, list) else values)
            )
            cols[str(name)] = arr
            lengths[str(name)] = len(arr)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns differ in length: {lengths}")
        out = pa.table(cols)
    elif type(table).__module__.split(".")[0] == "pandas":
        # pandas is optional: only reached when the caller already has it loaded
        out = pa.Table.from_pandas(table, preserve_index=False)
    else:
        raise TypeError(
            "expected a pyarrow.Table, pyarrow.RecordBatch, dict of column -> array, or "
            f"pandas.DataFrame; got {type(table).__name__}"
        )
    names = out.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate column name(s) in table: {dupes}")
    return out


def _is_numeric_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
    )


def _is_text_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_dictionary(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_no_nulls(col: pa.ChunkedArray, name: str) -> None:
    if col.null_count:
        row = _first_row(pc.is_null(col).to_numpy(zero_copy_only=False))
        raise ValueError(
            f"column {name!r}: missing value (null) at row {row} "
            f"({col.null_count} in all); fill or drop missing values first"
        )


def _first_bad_cast(col: pa.ChunkedArray, target: pa.DataType) -> tuple[int, Any]:
    """Find the first element of ``col`` that cannot be cast; only used to explain an error."""
    offset = 0
    for chunk in col.chunks:
        try:
            pc.cast(chunk, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # bisect on the prefix length: cast(chunk[:k]) fails iff k > first bad index
            lo, hi = 0, len(chunk)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                try:
                    pc.cast(chunk.slice(0, mid), target)
                    lo = mid
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    hi = mid
            return offset + lo, chunk[lo].as_py()
        offset += len(chunk)
    return -1, None


def _numeric_values(col: pa.ChunkedArray, name: str) -> np.ndarray:
    """A column fitted as numeric, as a finite float64 numpy array."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    _check_no_nulls(col, name)
    if not (_is_numeric_type(t) or _is_text_type(t)):
        raise ValueError(f"column {name!r} has type {t}, which cannot be read as numbers")
    try:
        values = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row, value = _first_bad_cast(col, pa.float64())
        if row < 0:
            raise ValueError(f"column {name!r}: cannot read as numbers ({exc})") from exc
        raise ValueError(
            f"column {name!r}: non-numeric value {value!r} at row {row}, in a column "
            "that is numeric"
        ) from exc
    x = values.to_numpy()
    bad = ~np.isfinite(x)
    if bad.any():
        row = _first_row(bad)
        raise ValueError(
            f"column {name!r}: non-finite value {x[row]!r} at row {row} "
            f"({int(bad.sum())} in all); NaN and infinity are not accepted"
        )
    return x


def _category_strings(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """A categorical column as strings (numbers and booleans use Arrow's text form)."""
    _check_no_nulls(col, name)
    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.cast(col, pa.string())
    if pa.types.is_string(t):
        return col
    if _is_numeric_type(t):
        return pc.cast(col, pa.string())
    raise ValueError(f"column {name!r} has type {t}, which cannot be used as a category")


def _sorted_categories(values: Iterable[str], by_value: bool) -> list[str]:
    # "2" before "10": sort by value when the column held numbers
    return sorted(values, key=float) if by_value else sorted(values)
