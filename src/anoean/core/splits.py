"""Numpy-only helpers of fitting: the stratified hold-out split and input scaling statistics.

Both kernel and neural detectors use them, so they live here, below torch.
"""

from __future__ import annotations

import numpy as np


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
