"""Synthetic problems and small settings for the baseline tests (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Problem:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def test_anomaly_rate(self) -> float:
        return float(self.y_test.mean())


def tabular_problem(seed: int = 0, p: int = 20) -> Problem:
    """Normals: 3 Gaussian clusters in ``p`` dimensions. Labelled anomalies come from 2
    shifted clusters; validation and test also hold a third, never-labelled anomaly cluster.

    Train: 600 normals + 30 labelled anomalies; validation: 200 + 30; test: 400 + 60.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(3, p))
    shifts = rng.normal(0.0, 1.0, size=(3, p))
    shifts *= 4.0 / np.linalg.norm(shifts, axis=1, keepdims=True) * np.sqrt(p) / 2

    def normals(n: int) -> np.ndarray:
        k = rng.integers(0, 3, size=n)
        return centres[k] + rng.normal(size=(n, p))

    def anomalies(n: int, kinds: list[int]) -> np.ndarray:
        k = rng.choice(kinds, size=n)
        return centres[k] + shifts[k] + rng.normal(size=(n, p))

    def part(n_norm: int, n_anom: int, kinds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        X = np.vstack([normals(n_norm), anomalies(n_anom, kinds)]).astype(np.float32)
        y = np.r_[np.zeros(n_norm), np.ones(n_anom)].astype(np.int64)
        return X, y

    X_tr, y_tr = part(600, 30, [0, 1])
    X_va, y_va = part(200, 30, [0, 1, 2])
    X_te, y_te = part(400, 60, [0, 1, 2])
    return Problem(X_tr, y_tr, X_va, y_va, X_te, y_te)


def image_problem(seed: int = 0) -> Problem:
    """scikit-learn's bundled 8x8 digits as (n, 1, 8, 8) images in [0, 1]: digit 0 is normal,
    labelled anomalies are digits 1 and 7, validation and test hold every other digit.

    Train: 100 normals + 10 labelled anomalies; validation: 30 + 10; test: 48 + 12.
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    data = load_digits()
    X = (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    c = data.target
    idx_n = rng.permutation(np.flatnonzero(c == 0))
    tr_n, va_n, te_n = idx_n[:100], idx_n[100:130], idx_n[130:]
    seen = rng.permutation(np.flatnonzero(np.isin(c, [1, 7])))
    tr_a = seen[:10]
    rest = rng.permutation(np.setdiff1d(np.flatnonzero(c != 0), tr_a))
    va_a, te_a = rest[:10], rest[10:22]

    def part(ni: np.ndarray, ai: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.concatenate([ni, ai])
        return X[idx], np.r_[np.zeros(ni.size), np.ones(ai.size)].astype(np.int64)

    return Problem(*part(tr_n, tr_a), *part(va_n, va_a), *part(te_n, te_a))


#: fast settings per baseline for tables: enough to learn the synthetic problem in seconds
FAST_TABULAR: dict[str, dict[str, Any]] = {
    "OCSVM": {},
    "SVM": {},
    "AnoGAN": {"lr": 1e-3, "max_epochs": 5, "patience": 3, "n_search_iter": 50},
    "EGBAD": {"lr": 1e-3, "max_epochs": 15, "patience": 5},
    "ALAD": {"lr": 1e-3, "max_epochs": 15, "patience": 5},
}

FAST_IMAGE: dict[str, dict[str, Any]] = {
    "OCSVM": {},
    "SVM": {},
    "AnoGAN": {
        "network": "conv",
        "lr": 2e-4,
        "max_epochs": 3,
        "latent_dim": 32,
        "batch_size": 32,
        "n_search_iter": 30,
    },
    "EGBAD": {"network": "conv", "lr": 2e-4, "max_epochs": 8, "latent_dim": 32, "batch_size": 32},
    "ALAD": {
        "network": "conv",
        "lr": 1e-3,
        "max_epochs": 10,
        "patience": None,
        "latent_dim": 32,
        "batch_size": 32,
    },
}

#: the smallest settings that exercise the whole code path (scikit-learn checks, I/O tests)
TINY: dict[str, dict[str, Any]] = {
    "OCSVM": {},
    "SVM": {},
    "AnoGAN": {"max_epochs": 2, "n_search_iter": 5, "batch_size": 16},
    "EGBAD": {"max_epochs": 2, "batch_size": 16},
    "ALAD": {"max_epochs": 2, "batch_size": 16},
    # a fixed fusion weight: the cross-fitted "auto" one (its own tests, test_anoean_plus)
    # fits the head several times, 2.4x the time of each of the ~60 scikit-learn checks
    "AnoEANPlus": {"max_epochs": 2, "n_members": 2, "latent_dim": 2, "fusion_weight": 0.5},
}
