"""The :class:`TabularPreprocessor`: fitted on a training table, then a ``float32`` matrix
per table (see :mod:`anoean.data.preprocessing` for the layout, scaling and missing-value
rules)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.core.datachecks import DataWarning
from anoean.data.preprocessing.columns import (
    _category_strings,
    _first_row,
    _is_numeric_type,
    _numeric_values,
    _sorted_categories,
    as_table,
)
from anoean.data.preprocessing.state import (
    check_consistent,
    check_feature_names,
    check_format,
    state_dict,
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _no_tick() -> None:
    """No progress to show."""


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
        return self._fit(as_table(table), _no_tick)

    def _fit(self, tab: pa.Table, tick: Callable[[], object]) -> TabularPreprocessor:
        """:meth:`fit` on an Arrow table, calling ``tick`` after each input column."""
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
            tick()
        mins = np.empty(len(nums), dtype=np.float64)
        maxs = np.empty(len(nums), dtype=np.float64)
        for j, c in enumerate(nums):
            x = _numeric_values(tab.column(c), c)
            mins[j], maxs[j] = x.min(), x.max()
            tick()
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
        return self._transform(as_table(table), _no_tick)

    def _transform(self, tab: pa.Table, tick: Callable[[], object]) -> np.ndarray:
        """:meth:`transform` of an Arrow table, calling ``tick`` after each input column."""
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
        out = np.zeros((tab.num_rows, self.n_features_out_), dtype=np.float32)
        self._encode_numbers(tab, out, tick)
        self._encode_categories(tab, out, tick)
        return out

    def _encode_numbers(
        self, tab: pa.Table, out: np.ndarray, tick: Callable[[], object] = _no_tick
    ) -> None:
        """Write the (scaled) numeric columns into the first columns of ``out``."""
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
            tick()

    def _encode_categories(
        self, tab: pa.Table, out: np.ndarray, tick: Callable[[], object] = _no_tick
    ) -> None:
        """Write the one-hot blocks of the categorical columns into ``out``, after the
        numbers; an unknown category is refused or warned about (for the caller of
        :meth:`transform`) and encoded as all zeros."""
        n = tab.num_rows
        offset = len(self.numeric_columns_)
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
                    stacklevel=3,  # the caller of transform
                )
                known = ~unknown
                flat[row_start[known] + offset + codes[known]] = 1.0
            else:
                flat[row_start + offset + codes] = 1.0
            offset += len(cats)
            tick()

    def encode_scorable(
        self, table: Any, *, strict_categories: bool = False
    ) -> tuple[np.ndarray, dict[str, int]] | None:
        """:meth:`transform` of a table in which every row can be encoded, in one pass, with
        the unknown categories counted (as :meth:`unknown_category_counts`); None when some
        row may not be encodable (a null, a NaN or infinite number, a number that leaves
        the float32 range once scaled, a column of another type, an unknown category when
        ``strict_categories``), for the caller to find and report those rows.

        The scoring hot path (:func:`anoean.serve.batch.score_batch`): the numbers are cast
        and scaled once, as a block, for the checks and the output together, and a
        dictionary-encoded category column is looked up once per distinct value. The output
        is the same array, bit for bit, as :meth:`transform` returns; no warning is issued.
        """
        parts = self._scorable_parts(table, strict_categories)
        if parts is None:
            return None
        block, codes, unknown = parts
        n, k = block.shape[1], block.shape[0]
        out = np.zeros((n, self.n_features_out_), dtype=np.float32)
        out[:, :k] = block.T
        del block
        row_start = np.arange(n, dtype=np.int64) * self.n_features_out_
        flat = out.reshape(-1)
        for c, pos in zip(self.categorical_columns_, codes, strict=True):
            if c in unknown:
                known = pos >= 0
                flat[row_start[known] + k + pos[known]] = 1.0
            else:
                flat[row_start + k + pos] = 1.0
        return out, unknown

    def encode_compact(
        self, table: Any, *, strict_categories: bool = False
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]] | None:
        """:meth:`encode_scorable` without writing the one-hot blocks: (the numeric features,
        float32 (n, k) as the first k columns of :meth:`transform`; the one-hot position of
        each categorical value, int64 (n, c), counted from the first one-hot feature, -1 for
        an unknown category, i.e. an all-zero block; the unknown categories per column), or
        None where :meth:`encode_scorable` returns None. ``transform`` is the numeric block
        followed by ones at ``k + position`` (tested)."""
        parts = self._scorable_parts(table, strict_categories)
        if parts is None:
            return None
        block, codes, unknown = parts
        n, k = block.shape[1], block.shape[0]
        xnum = np.empty((n, k), dtype=np.float32)
        xnum[:] = block.T
        del block
        pos = np.empty((n, len(codes)), dtype=np.int64)
        for j, col in enumerate(codes):
            pos[:, j] = col
        return xnum, pos, unknown

    def _scorable_parts(
        self, table: Any, strict_categories: bool
    ) -> tuple[np.ndarray, list[np.ndarray], dict[str, int]] | None:
        """The checks and arithmetic of :meth:`encode_scorable`: the scaled numbers, float64
        (k, n); per categorical column the one-hot position of each row's value counted from
        the first one-hot feature (-1: unknown); the unknown counts. None as there."""
        self._check_fitted()
        tab = as_table(table)
        n = tab.num_rows
        k = len(self.numeric_columns_)
        block = np.empty((k, n), dtype=np.float64)
        for j, c in enumerate(self.numeric_columns_):
            col = tab.column(c)
            if col.null_count or not _is_numeric_type(col.type):
                return None
            t = col.type
            if col.num_chunks == 1 and (pa.types.is_integer(t) or pa.types.is_floating(t)):
                block[j] = col.chunk(0).to_numpy()  # zero-copy view, converted as it is copied
            else:
                block[j] = pc.cast(col, pa.float64()).to_numpy()
        # one check for NaN, infinity and the float32 range once scaled: a NaN or an
        # infinity stays one through the scaling and fails the comparison
        with np.errstate(over="ignore", invalid="ignore"):
            if self.scaling == "minmax":
                block -= np.asarray(self.data_min_, dtype=np.float64)[:, None]
                block *= np.asarray(self._scale, dtype=np.float64)[:, None]
            if not (np.abs(block) <= _FLOAT32_MAX).all():
                return None
        unknown: dict[str, int] = {}
        positions: list[np.ndarray] = []
        offset = 0
        for c in self.categorical_columns_:
            cats = self.categories_[c]
            codes = _category_codes(tab.column(c), cats)
            if codes is None:
                return None
            bad = codes < 0
            if bad.any():
                if strict_categories:
                    return None
                unknown[c] = int(bad.sum())
                positions.append(np.where(bad, -1, codes + offset))
            else:
                positions.append(codes + offset)
            offset += len(cats)
        return block, positions, unknown

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

    def fit_transform(self, table: Any, *, progress: bool = False) -> np.ndarray:
        """``fit(table)`` then ``transform(table)``, converting the table once.

        ``progress`` shows a bar on stderr (tqdm) of the columns learnt, then encoded."""
        from tqdm.auto import tqdm

        tab = as_table(table)
        n = sum(c not in self.exclude for c in tab.column_names)
        with tqdm(
            total=2 * n,
            disable=not progress,
            unit="col",
            desc="preprocessing",
            leave=False,
            mininterval=0.5,
        ) as bar:
            tick = bar.update
            self._fit(tab, tick)
            return self._transform(tab, tick)

    def get_feature_names_out(self) -> list[str]:
        """The output column names (a copy of ``feature_names_out_``)."""
        self._check_fitted()
        return list(self.feature_names_out_)

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The parameters and fitted state as plain JSON-compatible values."""
        self._check_fitted()
        return state_dict(self)

    def to_json(self) -> str:
        """The fitted state as a JSON string (see :meth:`from_json`)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output."""
        check_format(state)
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
        check_consistent(obj)
        obj._set_derived()
        check_feature_names(state, obj.feature_names_out_)
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


def _category_codes(col: pa.ChunkedArray, cats: Sequence[str]) -> np.ndarray | None:
    """The index of each value of ``col`` in ``cats`` (-1: not there); None when ``col``
    holds nulls or is of a type :meth:`TabularPreprocessor.transform` would convert
    (then the caller takes the general path). A dictionary-encoded column is looked up
    once per dictionary entry."""
    if col.null_count:
        return None
    t = col.type
    value_set = pa.array(cats, type=pa.string())
    if pa.types.is_dictionary(t) and pa.types.is_string(t.value_type):
        parts = []
        for chunk in col.chunks:
            lookup = pc.fill_null(pc.index_in(chunk.dictionary, value_set=value_set), -1)
            idx = chunk.indices.to_numpy(zero_copy_only=False)
            parts.append(lookup.to_numpy(zero_copy_only=False).astype(np.int64)[idx])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if pa.types.is_string(t):
        idx = pc.fill_null(pc.index_in(col, value_set=value_set), -1)
        return np.asarray(idx.to_numpy(), dtype=np.int64)
    return None
