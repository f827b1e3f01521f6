"""The draws every split is made of: the per-name defaults and their checks, uniform draws
without replacement in the order train, test, validation, the choice of the seen anomaly
classes, and the arrays of each part."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

NAMES = ("mnist-1vall", "mnist-nvm", "nsl-kdd", "kdd99", "kdd99-zenati")

_SIZES = {
    "n_train_normal": 5000,
    "train_anomaly_ratio": 0.1,
    "n_test": 1700,
    "test_anomaly_rate": 0.2,
    "n_val": 1700,
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    # n_val is 500 for one-vs-all: with 5,000 + 1,360 normal images used by train and
    # test, digits 4 and 8 have only 464 / 465 images left (docs/protocol.md)
    "mnist-1vall": {**_SIZES, "n_val": 500, "normal": None, "n_seen": 4, "seen_digits": None},
    "mnist-nvm": {**_SIZES, "normal": None, "n_seen": 4, "seen_digits": None},
    "nsl-kdd": {**_SIZES, "seen_families": ("DoS", "Probe"), "n_seen": 2, "test_file": "same"},
    "kdd99": {**_SIZES, "seen_families": ("DoS", "Probe"), "n_seen": 2, "test_file": "same"},
    "kdd99-zenati": {
        "train_fraction": 0.5,
        "val_fraction": 0.1,
        "test_anomaly_rate": 0.2,
        "scale": False,
    },
}


# ------------------------------------------------------------------- helpers
def _options(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    if name not in _DEFAULTS:
        raise ValueError(f"unknown split name {name!r}; choose one of {NAMES}")
    unknown = sorted(set(given) - set(_DEFAULTS[name]))
    if unknown:
        raise ValueError(
            f"unknown option(s) for {name!r}: {unknown}; valid: {sorted(_DEFAULTS[name])}"
        )
    opts = {**_DEFAULTS[name], **given}
    for k in ("n_train_normal", "n_test", "n_val", "n_seen"):
        if k in opts and (not isinstance(opts[k], int | np.integer) or opts[k] < 0):
            raise ValueError(f"{k} must be a non-negative integer, got {opts[k]!r}")
    for k in ("train_anomaly_ratio", "test_anomaly_rate", "train_fraction", "val_fraction"):
        if k in opts and not 0.0 <= float(opts[k]) <= 1.0:
            raise ValueError(f"{k} must be within [0, 1], got {opts[k]!r}")
    return opts


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _draw(
    rng: np.random.Generator,
    available: np.ndarray,
    eligible: np.ndarray,
    n: int,
    what: str,
    hint: str,
) -> np.ndarray:
    """Draw n indices uniformly without replacement; mark them unavailable."""
    pool = np.flatnonzero(available & eligible)
    if n > pool.size:
        raise ValueError(
            f"cannot draw {n:,} {what}: only {pool.size:,} remain "
            f"({int(eligible.sum()):,} in all, before earlier draws). {hint}"
        )
    idx = np.sort(rng.choice(pool, size=n, replace=False)) if n else pool[:0]
    available[idx] = False
    return idx


def _counts(opts: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
    n_tr = int(opts["n_train_normal"])
    n_tr_an = int(round(opts["train_anomaly_ratio"] * n_tr))
    n_te_an = int(round(opts["test_anomaly_rate"] * opts["n_test"]))
    n_va_an = int(round(opts["test_anomaly_rate"] * opts["n_val"]))
    return (
        n_tr,
        n_tr_an,
        int(opts["n_test"]) - n_te_an,
        n_te_an,
        int(opts["n_val"]) - n_va_an,
        n_va_an,
    )


def _draw_three(
    rng: np.random.Generator,
    available: np.ndarray,
    is_normal: np.ndarray,
    train_normal: np.ndarray,
    train_anomalous: np.ndarray,
    opts: Mapping[str, Any],
    what: str,
    test_from: np.ndarray | None = None,
    val_from: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Indices of the train, test and validation parts, each shuffled.

    ``train_normal`` / ``train_anomalous`` say which samples may enter training; test and
    validation draw from every normal / anomalous sample left, restricted to ``test_from``
    / ``val_from`` when given (e.g. the official test file).
    """
    n_tr, n_tr_an, n_te, n_te_an, n_va, n_va_an = _counts(opts)
    hint = (
        "Lower n_train_normal, train_anomaly_ratio, n_test or n_val, or choose other "
        "seen classes (see docs/protocol.md)."
    )
    everywhere = np.ones_like(is_normal)
    te_ok = everywhere if test_from is None else test_from
    va_ok = everywhere if val_from is None else val_from
    out = {}
    tr = np.r_[
        _draw(rng, available, train_normal, n_tr, f"normal {what} for training", hint),
        _draw(
            rng, available, train_anomalous, n_tr_an, f"seen anomalous {what} for training", hint
        ),
    ]
    out["train"] = rng.permutation(tr)
    te = np.r_[
        _draw(rng, available, is_normal & te_ok, n_te, f"normal {what} for the test set", hint),
        _draw(
            rng, available, ~is_normal & te_ok, n_te_an, f"anomalous {what} for the test set", hint
        ),
    ]
    out["test"] = rng.permutation(te)
    va = np.r_[
        _draw(rng, available, is_normal & va_ok, n_va, f"normal {what} for validation", hint),
        _draw(
            rng, available, ~is_normal & va_ok, n_va_an, f"anomalous {what} for validation", hint
        ),
    ]
    out["val"] = rng.permutation(va)
    return out


def _choose(
    rng: np.random.Generator, candidates: Sequence[Any], explicit: Any, n: int, what: str
) -> tuple:
    """The seen anomaly classes: ``explicit`` if given, else ``n`` drawn by the seed."""
    if explicit is not None:
        chosen = list(explicit) if not isinstance(explicit, str) else [explicit]
        bad = [x for x in chosen if x not in candidates]
        if bad or not chosen or len(set(chosen)) != len(chosen):
            raise ValueError(
                f"seen {what} {chosen!r} must be distinct, non-empty, and "
                f"among the anomaly {what} {list(candidates)}"
            )
        return tuple(sorted(chosen, key=list(candidates).index))
    if not 1 <= n <= len(candidates):
        raise ValueError(f"n_seen must be between 1 and {len(candidates)}, got {n}")
    picked = rng.choice(len(candidates), size=n, replace=False)
    return tuple(candidates[i] for i in sorted(picked))


def _part_arrays(
    idx: dict[str, np.ndarray],
    features: dict[str, Any],
    is_normal: np.ndarray,
    classes: np.ndarray,
    names: np.ndarray,
    n_first: int,
) -> dict[str, Any]:
    """The Split arrays of each part p in ``idx`` (row indices into the concatenation of
    the source files, the first holding ``n_first`` rows): X_p (given), y_p, c_p, and the
    provenance src_p (file name) and row_p (row within that file)."""
    arrays: dict[str, Any] = {}
    for p, i in idx.items():
        arrays[f"X_{p}"] = features[p]
        arrays[f"y_{p}"] = (~is_normal[i]).astype(np.int64)
        arrays[f"c_{p}"] = classes[i]
        arrays[f"src_{p}"] = names[(i >= n_first).astype(int)]
        arrays[f"row_{p}"] = np.where(i < n_first, i, i - n_first).astype(np.int64)
    return arrays
