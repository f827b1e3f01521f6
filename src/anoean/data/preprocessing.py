"""A fitted, serialisable preprocessor for tables: one-hot categories, min-max numbers.

:class:`TabularPreprocessor` turns a table (a ``pyarrow.Table``, a ``RecordBatch``, a dict
of column name -> array-like, or a pandas ``DataFrame`` when pandas is installed) into a
``float32`` matrix. It learns everything it needs from the training table in :meth:`fit`
and nothing afterwards, so validation and test data never leak into it. Its state is plain
JSON (:meth:`to_json` / :meth:`save`), never pickle, so a saved model can be inspected and
loaded safely.

Output layout
-------------
Numeric columns come first, in the order of the fitted table, then one one-hot block per
categorical column: in the order given by ``categorical``, or in table order when the
categorical columns are inferred. ``feature_names_out_`` names every output column
(``src_bytes``, ``service=http``, ...).

Scaling
-------
``scaling="minmax"`` maps each numeric column with ``(x - min) / (max - min)`` using the
training minimum and maximum. A column that is constant in training (``max == min``) uses a
range of 1 instead, so it is 0 on the training data and ``x - min`` later (scikit-learn's
``MinMaxScaler`` does the same). Values outside the training range are **not clipped**: in
anomaly detection an out-of-range value is itself evidence of an anomaly, and clipping would
erase it. ``scaling="none"`` passes numbers through unchanged.

Missing and invalid values
--------------------------
There is no imputation: a null, NaN or infinite number, or a null category, raises a
``ValueError`` naming the column and the first bad row (0-based). Silently filling values in
would change what the model sees without anyone noticing.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.core.datachecks import DataWarning

__all__ = ["TabularPreprocessor", "as_table"]

_FORMAT = "anoean.TabularPreprocessor"
_VERSION = 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


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


class TabularPreprocessor:
    """One-hot encode categorical columns and min-max scale numeric ones.

    Parameters
    ----------
    categorical : sequence of str, optional
        Columns to one-hot encode (numeric columns may be listed too, e.g. a 0/1 flag).
        ``None`` (default) means every non-numeric column is categorical.
    exclude : sequence of str, default ()
        Columns to drop. They must exist in the table given to :meth:`fit`.
    unknown : {"ignore", "error"}, default "ignore"
        What :meth:`transform` does with a category not seen in :meth:`fit`: ``"ignore"``
        encodes it as an all-zero one-hot block; ``"error"`` raises a ``ValueError`` naming
        the column, the row and the value.
    scaling : {"minmax", "none"}, default "minmax"
        How numeric columns are scaled (see the module documentation).

    Attributes
    ----------
    input_columns_ : list of str
        The columns :meth:`transform` needs.
    numeric_columns_, categorical_columns_ : list of str
        The two kinds, in output order.
    categories_ : dict of str -> list of str
        The categories of each categorical column, sorted (by value for columns that held
        numbers, else by code point), as strings.
    data_min_, data_max_ : numpy.ndarray
        Per numeric column, the training minimum and maximum.
    feature_names_out_ : list of str
        One name per output column: the column name for numbers, ``column=category`` for a
        one-hot column.
    """

    def __init__(
        self,
        *,
        categorical: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        unknown: str = "ignore",
        scaling: str = "minmax",
    ) -> None:
        if isinstance(categorical, str) or isinstance(exclude, str):
            raise ValueError("categorical and exclude take a list of column names, not a str")
        if unknown not in ("ignore", "error"):
            raise ValueError(f"unknown must be 'ignore' or 'error', got {unknown!r}")
        if scaling not in ("minmax", "none"):
            raise ValueError(f"scaling must be 'minmax' or 'none', got {scaling!r}")
        self.categorical = None if categorical is None else [str(c) for c in categorical]
        self.exclude = [str(c) for c in exclude]
        self.unknown = unknown
        self.scaling = scaling
        overlap = set(self.categorical or ()) & set(self.exclude)
        if overlap:
            raise ValueError(f"column(s) both categorical and excluded: {sorted(overlap)}")

    # ------------------------------------------------------------------ fitting
    def fit(self, table: Any) -> TabularPreprocessor:
        """Learn the categories and the numeric ranges from a training table.

        Returns
        -------
        TabularPreprocessor
            ``self``.
        """
        tab = as_table(table)
        names = tab.column_names
        missing = [c for c in [*self.exclude, *(self.categorical or ())] if c not in names]
        if missing:
            raise ValueError(
                f"column(s) named in categorical/exclude are not in the table: "
                f"{missing}; table columns: {names}"
            )
        if tab.num_rows == 0:
            raise ValueError("cannot fit on a table with no rows")
        inputs = [c for c in names if c not in self.exclude]
        if self.categorical is None:
            cats = [c for c in inputs if not _is_numeric_type(tab.column(c).type)]
        else:
            cats = list(self.categorical)
        nums = [c for c in inputs if c not in cats]
        categories: dict[str, list[str]] = {}
        for c in cats:
            col = tab.column(c)
            strings = _category_strings(col, c)
            by_value = (
                pa.types.is_integer(col.type)
                or pa.types.is_floating(col.type)
                or pa.types.is_decimal(col.type)
            )
            categories[c] = _sorted_categories(pc.unique(strings).to_pylist(), by_value)
        mins = np.empty(len(nums), dtype=np.float64)
        maxs = np.empty(len(nums), dtype=np.float64)
        for j, c in enumerate(nums):
            x = _numeric_values(tab.column(c), c)
            mins[j], maxs[j] = x.min(), x.max()
        self.input_columns_ = inputs
        self.numeric_columns_ = nums
        self.categorical_columns_ = cats
        self.categories_ = categories
        self.data_min_ = mins
        self.data_max_ = maxs
        self._set_derived()
        return self

    def _set_derived(self) -> None:
        self.feature_names_out_ = list(self.numeric_columns_) + [
            f"{c}={v}" for c in self.categorical_columns_ for v in self.categories_[c]
        ]
        self.n_features_out_ = len(self.feature_names_out_)
        rng = self.data_max_ - self.data_min_
        # constant column: range 1, so it maps to 0 in training and x - min afterwards
        self._scale = 1.0 / np.where(rng > 0, rng, 1.0)

    def _check_fitted(self) -> None:
        if not hasattr(self, "input_columns_"):
            raise RuntimeError("this TabularPreprocessor is not fitted; call fit() first")

    # ------------------------------------------------------------- transforming
    def transform(self, table: Any) -> np.ndarray:
        """Encode a table with the fitted state.

        Returns
        -------
        numpy.ndarray of float32, shape (n_rows, n_features_out_)

        Raises
        ------
        ValueError
            A needed column is missing; a value is null, NaN, infinite or not a number in a
            numeric column; an unknown category with ``unknown="error"``.
        """
        self._check_fitted()
        tab = as_table(table)
        names = tab.column_names
        missing = [c for c in self.input_columns_ if c not in names]
        if missing:
            raise ValueError(
                f"column(s) missing from the table: {missing} (fitted on {self.input_columns_})"
            )
        extra = [c for c in names if c not in self.input_columns_ and c not in self.exclude]
        if extra:
            warnings.warn(
                f"TabularPreprocessor.transform ignores column(s) not seen in fit: {extra}",
                UserWarning,
                stacklevel=2,
            )
        n = tab.num_rows
        k = len(self.numeric_columns_)
        out = np.zeros((n, self.n_features_out_), dtype=np.float32)
        for j, c in enumerate(self.numeric_columns_):
            x = _numeric_values(tab.column(c), c)
            if self.scaling == "minmax":
                x = (x - self.data_min_[j]) * self._scale[j]
            big = np.abs(x) > _FLOAT32_MAX
            if big.any():
                row = _first_row(big)
                raise ValueError(
                    f"column {c!r}: value at row {row} is {x[row]:.6g} after scaling, beyond "
                    "the float32 range of the output"
                )
            out[:, j] = x
        offset = k
        # flat positions of each row's first cell: one-hot writes become 1-D scatters
        row_start = np.arange(n, dtype=np.int64) * self.n_features_out_
        flat = out.reshape(-1)
        for c in self.categorical_columns_:
            cats = self.categories_[c]
            strings = _category_strings(tab.column(c), c)
            codes = pc.fill_null(
                pc.index_in(strings, value_set=pa.array(cats, type=pa.string())), -1
            ).to_numpy()
            unknown = codes < 0
            if unknown.any():
                if self.unknown == "error":
                    row = _first_row(unknown)
                    raise ValueError(
                        f"column {c!r}: unknown category {strings[row].as_py()!r} at row {row} "
                        f"({int(unknown.sum())} unknown value(s) in all); known: {cats}"
                    )
                row = _first_row(unknown)
                warnings.warn(
                    f"column {c!r}: {int(unknown.sum())} value(s) not seen in fit (first "
                    f"{strings[row].as_py()!r} at row {row}) are encoded as all-zero; "
                    "unknown='error' (CLI: --strict-categories) refuses them instead",
                    DataWarning,
                    stacklevel=2,
                )
                known = ~unknown
                flat[row_start[known] + offset + codes[known]] = 1.0
            else:
                flat[row_start + offset + codes] = 1.0
            offset += len(cats)
        return out

    def out_of_range_rows(self, table: Any) -> tuple[np.ndarray, dict[int, str]]:
        """Rows with a finite number that leaves the float32 range once scaled, which
        :meth:`transform` refuses: (mask, row -> reason), vectorised per column.

        Rows whose numbers are missing or not finite are not reported here (see
        :func:`anoean.data.tables.find_bad_rows`).
        """
        self._check_fitted()
        tab = as_table(table)
        mask = np.zeros(tab.num_rows, dtype=bool)
        reasons: dict[int, str] = {}
        for j, c in enumerate(self.numeric_columns_):
            col = tab.column(c)
            if pa.types.is_dictionary(col.type):
                col = pc.cast(col, col.type.value_type)
            try:
                x = pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue  # not numbers at all: find_bad_rows names those
            with np.errstate(all="ignore"):
                z = (x - self.data_min_[j]) * self._scale[j] if self.scaling == "minmax" else x
            big = np.isfinite(x) & ~(np.abs(z) <= _FLOAT32_MAX)
            if big.any():
                mask |= big
                for r in np.flatnonzero(big)[:1000].tolist():
                    reasons.setdefault(
                        r,
                        f"column {c!r}: the value {x[r]:.6g} is {z[r]:.4g} after scaling, "
                        "beyond the float32 range of the model's input",
                    )
        return mask, reasons

    def unknown_category_counts(self, table: Any) -> dict[str, int]:
        """Per categorical column, how many values were not seen in :meth:`fit` (missing
        values are not counted: they are refused, not encoded)."""
        self._check_fitted()
        tab = as_table(table)
        out: dict[str, int] = {}
        for c in self.categorical_columns_:
            col = tab.column(c)
            if pa.types.is_dictionary(col.type):
                col = pc.cast(col, col.type.value_type)
            text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
            idx = pc.index_in(text, value_set=pa.array(self.categories_[c], type=pa.string()))
            n = int(idx.null_count) - int(col.null_count)
            if n:
                out[c] = n
        return out

    def fit_transform(self, table: Any) -> np.ndarray:
        """``fit(table)`` then ``transform(table)``, converting the table once."""
        tab = as_table(table)
        return self.fit(tab).transform(tab)

    def get_feature_names_out(self) -> list[str]:
        """The output column names (a copy of ``feature_names_out_``)."""
        self._check_fitted()
        return list(self.feature_names_out_)

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The parameters and fitted state as plain JSON-compatible values."""
        self._check_fitted()
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": {
                "categorical": self.categorical,
                "exclude": self.exclude,
                "unknown": self.unknown,
                "scaling": self.scaling,
            },
            "input_columns": self.input_columns_,
            "numeric_columns": self.numeric_columns_,
            "categorical_columns": self.categorical_columns_,
            "categories": self.categories_,
            # Python floats round-trip exactly through JSON (shortest repr)
            "data_min": [float(v) for v in self.data_min_],
            "data_max": [float(v) for v in self.data_max_],
            "feature_names_out": self.feature_names_out_,
        }

    def to_json(self) -> str:
        """The fitted state as a JSON string (see :meth:`from_json`)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output."""
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise ValueError(f"not a serialised TabularPreprocessor (format != {_FORMAT!r})")
        if state.get("version") != _VERSION:
            raise ValueError(
                f"unsupported TabularPreprocessor format version {state.get('version')!r}; "
                f"this anoean reads version {_VERSION}"
            )
        try:
            obj = cls(**state["params"])
            obj.input_columns_ = list(state["input_columns"])
            obj.numeric_columns_ = list(state["numeric_columns"])
            obj.categorical_columns_ = list(state["categorical_columns"])
            obj.categories_ = {
                str(k): [str(v) for v in vs] for k, vs in state["categories"].items()
            }
            obj.data_min_ = np.asarray(state["data_min"], dtype=np.float64)
            obj.data_max_ = np.asarray(state["data_max"], dtype=np.float64)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed TabularPreprocessor state: {exc!r}") from exc
        k = len(obj.numeric_columns_)
        if obj.data_min_.shape != (k,) or obj.data_max_.shape != (k,):
            raise ValueError(
                "malformed TabularPreprocessor state: data_min/data_max do not "
                f"match the {k} numeric columns"
            )
        if set(obj.categories_) != set(obj.categorical_columns_):
            raise ValueError(
                "malformed TabularPreprocessor state: categories do not match categorical_columns"
            )
        if sorted(obj.input_columns_) != sorted(obj.numeric_columns_ + obj.categorical_columns_):
            raise ValueError(
                "malformed TabularPreprocessor state: input_columns is not the "
                "union of numeric_columns and categorical_columns"
            )
        obj._set_derived()
        if (
            "feature_names_out" in state
            and list(state["feature_names_out"]) != obj.feature_names_out_
        ):
            raise ValueError(
                "malformed TabularPreprocessor state: feature_names_out does not "
                "match the categories"
            )
        return obj

    @classmethod
    def from_json(cls, s: str) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_json` output."""
        try:
            state = json.loads(s)
        except json.JSONDecodeError as exc:
            raise ValueError(f"TabularPreprocessor JSON cannot be parsed: {exc}") from exc
        return cls.from_dict(state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` (UTF-8)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TabularPreprocessor:
        """Read a preprocessor written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            return cls.from_json(text)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from exc

    def __repr__(self) -> str:
        state = "unfitted"
        if hasattr(self, "input_columns_"):
            state = (
                f"{len(self.numeric_columns_)} numeric, "
                f"{len(self.categorical_columns_)} categorical -> {self.n_features_out_}"
            )
        return (
            f"TabularPreprocessor(categorical={self.categorical!r}, exclude={self.exclude!r}, "
            f"unknown={self.unknown!r}, scaling={self.scaling!r}) [{state}]"
        )
