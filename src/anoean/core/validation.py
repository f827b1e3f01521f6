"""Input checks that name the problem: the row, the column and the value.

Every detector validates its input through these (:class:`~anoean.core.detector.BaseDetector`
calls them); nothing here imports torch or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: largest finite float32: every detector computes in float32, so a larger input is refused
FLOAT32_MAX = float(np.finfo(np.float32).max)


class UnscorableRowsError(ValueError):
    """Rows whose score would not be finite (an input too large for the model's float32
    arithmetic). ``rows`` holds their indices; the message names the first row and column."""

    def __init__(self, message: str, rows: np.ndarray) -> None:
        super().__init__(message)
        self.rows = rows


def _column(j: int, names: Any = None) -> str:
    return f"column {names[j]!r}" if names is not None and j < len(names) else f"column {j}"


def _check_float32_range(X: np.ndarray, name: str, chunk: int = 1 << 16, names: Any = None) -> None:
    """Raise a ValueError naming the first finite value beyond the float32 range (the
    column by ``names`` when given)."""
    if X.dtype != np.float64:
        return
    flat = X.reshape(X.shape[0], -1)
    for start in range(0, flat.shape[0], chunk):
        part = np.abs(flat[start : start + chunk])
        big = part > FLOAT32_MAX
        if big.any():  # beyond float32 means: rounds to inf (FLT_MAX + half an ulp)
            with np.errstate(over="ignore"):
                big &= np.isfinite(part) & np.isinf(part.astype(np.float32))
        if big.any():
            i, j = (int(v) for v in np.argwhere(big)[0])
            raise ValueError(
                f"{name} has the value {flat[start + i, j]:.6g} at row {start + i}, "
                f"{_column(j, names)}, "
                f"beyond the float32 range (+-{FLOAT32_MAX:.4g}) the models compute in; "
                f"{int(big.sum())} such value(s) in rows {start}-{start + part.shape[0] - 1}"
            )


def _locate_nonfinite(X: np.ndarray, name: str) -> str:
    bad = ~np.isfinite(X)
    first = np.argwhere(bad)[0]
    value = X[tuple(first)]
    kind = "NaN" if np.isnan(value) else "inf"
    where = f"row {first[0]}" + (
        f", column {first[1]}" if X.ndim == 2 else f", index {tuple(first[1:])}"
    )
    return f"{name} contains {kind} at {where} ({int(bad.sum())} non-finite value(s) in total)"


def _locate_non_numeric(X: Any, name: str) -> str:
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 1:
        arr = arr[:, None]
    flat = arr.reshape(arr.shape[0], -1)
    for j in range(flat.shape[1]):  # error path only: fine to loop
        col = flat[:, j]
        for i, v in enumerate(col):
            try:
                float(v)
            except (TypeError, ValueError):
                return f"{name} has a non-numeric value {v!r} at row {i}, column {j}"
    return f"{name} could not be converted to numbers"


def check_finite(X: np.ndarray, name: str = "X", chunk: int = 1 << 16) -> None:
    """Raise a ValueError naming the first NaN/inf (row, column); chunked to bound memory."""
    for start in range(0, X.shape[0], chunk):
        part = X[start : start + chunk]
        if not np.isfinite(part).all():
            msg = _locate_nonfinite(part, name)
            # shift the row index to the whole array
            row = int(np.argwhere(~np.isfinite(part))[0][0])
            raise ValueError(msg.replace(f"row {row}", f"row {start + row}", 1))


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def validate_labels(y: Any, n_samples: int, name: str = "y") -> np.ndarray:
    """Check ``y`` holds 0 (normal) or 1 (known anomaly) for each of ``n_samples`` rows."""
    if y is None:
        return np.zeros(n_samples, dtype=np.int64)
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    if y_arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one label per row; got shape {y_arr.shape}")
    if y_arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {y_arr.shape[0]} labels but X has {n_samples} rows")
    if y_arr.dtype == bool:
        return y_arr.astype(np.int64)
    try:
        y_num = y_arr.astype(np.float64)
    except (TypeError, ValueError):
        bad = next(i for i, v in enumerate(y_arr) if str(v) not in ("0", "1"))
        raise ValueError(
            f"{name} must hold 0 (normal) or 1 (anomaly); row {bad} has {_py(y_arr[bad])!r}"
        ) from None
    ok = (y_num == 0) | (y_num == 1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"{name} must hold 0 (normal) or 1 (anomaly); row {bad} has {_py(y_arr[bad])!r}"
        )
    return y_num.astype(np.int64)


def explain_overflow(x: np.ndarray, shift: Any = None, scale: Any = None, names: Any = None) -> str:
    """Why row ``x`` gets no finite score: the column with the largest value after the
    model's input scaling ``(x - shift) / scale`` (when given), which is what overflows its
    float32 arithmetic. Shared by the detectors and the numpy scorer."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    z = flat
    if shift is not None and scale is not None:
        shift, scale = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (shift, scale))
        if shift.shape == flat.shape and scale.shape == flat.shape:
            with np.errstate(all="ignore"):
                z = (flat - shift) / scale
    j = int(np.argmax(np.where(np.isfinite(z), np.abs(z), np.inf)))
    if names is not None and len(names) != flat.size:
        names = None
    scaled = "" if z is flat else f" ({z[j]:.4g} after the model's input scaling)"
    return (
        f"{_column(j, names)} holds {flat[j]:.6g}{scaled}, too large for the model's float32 "
        "arithmetic: its score is not finite"
    )


def check_scoring_rows(X: Any, n_features: int, names: list[str] | None = None) -> np.ndarray:
    """Rows for the torch-free scorers, as float32 (n, p): one row may be given as a 1-D
    array; the feature count must match; a float64 value beyond float32 is named as such
    (never called inf); a non-finite value is refused, naming its row and column (by
    ``names`` when given)."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"expected rows of {n_features} features; got shape {X.shape}")
    if X.dtype.kind == "f" and X.dtype.itemsize > 4:
        _check_float32_range(X, "X", names=names)
    X = np.asarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        i, j = (int(v) for v in np.argwhere(~np.isfinite(X))[0])
        name = names[j] if names else f"column {j}"
        raise ValueError(f"X has a non-finite value {float(X[i, j])} at row {i}, {name}")
    return X


def refuse_unscorable(
    scores: np.ndarray, rows: Callable[[], np.ndarray], explain: Callable[[np.ndarray], str]
) -> np.ndarray:
    """``scores``, or a ``ValueError`` naming the first row whose score is not finite and
    why (``explain`` of that row of ``rows()``, the rows as scored, built only on this error
    path), with the count of such rows: the torch-free scorers' rule that a NaN score never
    passes as normal."""
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"X: row {i} cannot be scored: {explain(rows()[i])} "
            f"({int(bad.sum())} such row(s) in all)"
        )
    return scores
