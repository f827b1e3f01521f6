"""Warnings about training data that fits but is probably not what the user meant.

Fit still works on such data; the warnings name the columns so that the user can act:

* **constant columns** carry no information (and a table whose every column is constant
  gives every row the same score);
* **squashed columns**: one extreme value stretches a column's range so far that min-max
  or standard scaling squeezes almost every other value of it into a tiny interval, where
  the model can no longer tell them apart. The test: the full range (max - min) is more
  than :data:`SQUASH_RATIO` times the range of the central 98% of the values (1st to 99th
  percentile). Both scalings are affine, so the same test serves both; a log transform of
  the column, or removing the bad value, is the usual remedy.

Only numpy is needed here, so that every layer may use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

#: full range / central 98% range above which a column counts as squashed
SQUASH_RATIO = 1e4
#: rows used to estimate the percentiles of large tables (a fixed, evenly spaced subset)
_SAMPLE_ROWS = 200_000


class DataWarning(UserWarning):
    """Training data that fits but is likely a mistake (constant or squashed columns, too
    many categories); the message names the columns."""


def _names(names: Sequence[Any] | None, p: int) -> list[str]:
    if names is not None and len(names) == p:
        return [repr(str(n)) for n in names]
    return [str(j) for j in range(p)]


def _listed(items: list[str], limit: int = 10) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def constant_columns(X: np.ndarray) -> np.ndarray:
    """Indices of the columns of a 2-D array whose values are all equal."""
    if X.ndim != 2 or X.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero((X == X[:1]).all(axis=0))


def warn_constant_columns(
    X: np.ndarray, names: Sequence[Any] | None = None, *, stacklevel: int = 3
) -> None:
    """Warn (:class:`DataWarning`) about constant columns of a 2-D training matrix."""
    if X.ndim != 2 or X.shape[0] < 2:
        return
    const = constant_columns(X)
    if const.size == 0:
        return
    labels = _names(names, X.shape[1])
    if const.size == X.shape[1]:
        msg = (
            f"every column of the training data is constant ({X.shape[1]} column(s)): the "
            "model cannot tell rows apart, and every row will get about the same score"
        )
    else:
        msg = (
            f"{const.size} constant column(s) in the training data carry no information: "
            f"column {_listed([labels[j] for j in const])}"
        )
    warnings.warn(msg, DataWarning, stacklevel=stacklevel)


def squashed_columns(X: np.ndarray) -> list[tuple[int, float, float]]:
    """(column, extreme value, full range / central range) for each squashed column."""
    if X.ndim != 2 or X.shape[0] < 3:
        return []
    step = max(1, X.shape[0] // _SAMPLE_ROWS)
    sample = np.asarray(X[::step], dtype=np.float64)
    lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
    q01, q50, q99 = np.percentile(sample, [1, 50, 99], axis=0)
    central = q99 - q01
    full = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(central > 0, full / central, 0.0)
    out = []
    for j in np.flatnonzero(ratio > SQUASH_RATIO):
        extreme = hi[j] if hi[j] - q50[j] >= q50[j] - lo[j] else lo[j]
        out.append((int(j), float(extreme), float(ratio[j])))
    return out


def warn_squashed_columns(
    X: np.ndarray, names: Sequence[Any] | None = None, *, kind: str, stacklevel: int = 3
) -> None:
    """Warn (:class:`DataWarning`) about columns that ``kind`` scaling would squash."""
    found = squashed_columns(X)
    if not found:
        return
    labels = _names(names, X.shape[1])
    parts = [
        f"column {labels[j]} (value {v:.6g}, range {r:.3g}x its central 98%)" for j, v, r in found
    ]
    warnings.warn(
        f"{kind} scaling squashes {len(found)} column(s) where an extreme value stretches "
        f"the range, so that 98% of the values share less than 1/{SQUASH_RATIO:.0f} of it: "
        f"{_listed(parts, 5)}; check those values, or log-transform the column",
        DataWarning,
        stacklevel=stacklevel,
    )
