"""Numpy-only helpers of fitting: the stratified hold-out split, input scaling statistics and
the check that the scaling does not overflow float32 (:func:`check_scaling`).

Both kernel and neural detectors use them, so they live here, below torch.
"""

from __future__ import annotations

import numpy as np

from anoean.core.validation import FLOAT32_MAX, UnscorableRowsError


def holdout_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of row indices into (train, validation).

    Each class contributes ``round(fraction * n_class)`` rows to validation, with at least one
    normal row on each side. Anomalies go to validation only when there are at least two, so
    that training always keeps some. Indices are returned sorted.
    """
    n_normal = int((y == 0).sum())
    if n_normal < 2:
        raise ValueError(
            f"n_samples={y.shape[0]} with {n_normal} normal row(s): at least 2 normal rows are "
            "needed to hold out validation data (or pass X_val and y_val)"
        )
    train_parts, val_parts = [], []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        if idx.size == 0:
            continue
        idx = rng.permutation(idx)
        k = int(round(fraction * idx.size))
        if cls == 0:
            k = min(max(k, 1), idx.size - 1)
        elif idx.size < 2:
            k = 0
        else:
            k = min(max(k, 1), idx.size - 1)
        val_parts.append(idx[:k])
        train_parts.append(idx[k:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))


def scaling_stats(X: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature shift and scale for ``kind`` in {"standard", "minmax", "none"}.

    Constant features get scale 1 (they carry no information, and dividing by ~0 would turn
    round-off into huge values at scoring time).
    """
    shape = X.shape[1:]
    if kind == "none":
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    X64 = X.astype(np.float64, copy=False)
    if kind == "standard":
        shift, scale = X64.mean(axis=0), X64.std(axis=0)
    elif kind == "minmax":
        shift = X64.min(axis=0)
        scale = X64.max(axis=0) - shift
    else:
        raise ValueError(f"scaling must be 'auto', 'standard', 'minmax' or 'none'; got {kind!r}")
    scale = np.where(scale > 1e-8, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)


def check_scaling(
    X: np.ndarray, shift: np.ndarray, scale: np.ndarray, index: np.ndarray, name: str
) -> None:
    """Raise :class:`~anoean.core.validation.UnscorableRowsError` where the input scaling
    ``(x - shift) / scale``, in float32 as :class:`anoean.nn.blocks.Standardize` computes
    it, overflows on a row of X (a column whose values span more than the float32 range).
    ``index`` maps X's rows to the row numbers to report.

    Rounding is monotone, so each column's extremes are its minimum and maximum: the check
    costs one min/max pass unless a column overflows.
    """
    if X.shape[0] == 0:
        return
    flat = X.reshape(X.shape[0], -1)
    s = np.asarray(shift, dtype=np.float32).reshape(-1)
    c = np.asarray(scale, dtype=np.float32).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        ends = (np.stack([flat.min(axis=0), flat.max(axis=0)]) - s) / c
        if np.isfinite(ends).all():
            return
        bad = ~np.isfinite((flat - s) / c)
    i, j = (int(v) for v in np.argwhere(bad)[0])
    rows = np.asarray(index)[np.flatnonzero(bad.any(axis=1))]
    raise UnscorableRowsError(
        f"{name}: row {int(np.asarray(index)[i])}, column {j} holds {float(flat[i, j]):.6g}: "
        f"the input scaling (x - {float(s[j]):.6g}) / {float(c[j]):.6g} overflows the model's "
        f"float32 arithmetic there, as the column's values span more than the float32 range "
        f"(+-{FLOAT32_MAX:.4g}); rescale that column ({rows.size} such row(s) in all)",
        rows,
    )


def resolve_scaling(scaling: str, *, images: bool, for_images: str = "none") -> str:
    """The scaling ``"auto"`` stands for: ``"standard"`` for tables, ``for_images`` for
    images (pixels already share one range: ``"none"``, or the GAN baselines' ``"symmetric"``
    to [-1, 1]). Any other value is returned as it is."""
    if scaling != "auto":
        return scaling
    return for_images if images else "standard"
