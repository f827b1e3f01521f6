"""The rows a fitted preprocessor cannot encode: :func:`find_bad_rows`, vectorised, with the
first reason per bad row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.tables.formats import _NUMBER_RE


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
            # the pattern allows surrounding spaces, which Arrow's cast does not
            text = pc.utf8_trim_whitespace(col)
            vals = pc.cast(pc.if_else(ok, text, pa.scalar("nan")), pa.float64()).to_numpy()
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
