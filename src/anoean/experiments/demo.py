"""The embedded demo: AnoEAN against a one-class SVM on scikit-learn's bundled digits.

Nothing is downloaded: :func:`sklearn.datasets.load_digits` ships 1,797 8x8 images with
scikit-learn. One digit is normal; a few labelled anomalies come from ``n_seen`` other
digits; the test set holds anomalies of *every* other digit, so most of its anomaly kinds
were never seen in training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoean.core.metrics import evaluate

logger = logging.getLogger("anoean")


@dataclass
class DemoSplit:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    c_test: np.ndarray
    seen: list[int]
    description: str


def digits_split(normal: int = 0, *, n_seen: int = 3, seed: int = 0) -> DemoSplit:
    """One-digit-normal split of the bundled digits.

    Normals (about 180) go 55% / 20% / 25% to train / validation / test. Training gets
    labelled anomalies equal to 10% of its normals, drawn only from ``n_seen`` seed-chosen
    digits. Validation and test get anomalies from all nine other digits: validation at 20%
    of its rows, test as many anomalies as normals (so the many unseen kinds are all there).
    """
    from sklearn.datasets import load_digits

    if normal not in range(10):
        raise ValueError(f"normal must be a digit 0-9; got {normal!r}")
    if not 1 <= n_seen <= 9:
        raise ValueError(f"n_seen must be between 1 and 9; got {n_seen}")
    rng = np.random.default_rng(seed)
    data = load_digits()
    X, c = data.data.astype(np.float32) / 16.0, data.target
    others = [d for d in range(10) if d != normal]
    seen = sorted(int(d) for d in rng.choice(others, size=n_seen, replace=False))
    idx_n = rng.permutation(np.flatnonzero(c == normal))
    n_tr, n_va = int(0.55 * idx_n.size), int(0.20 * idx_n.size)
    tr_n, va_n, te_n = idx_n[:n_tr], idx_n[n_tr : n_tr + n_va], idx_n[n_tr + n_va :]
    pool_seen = rng.permutation(np.flatnonzero(np.isin(c, seen)))
    tr_a = pool_seen[: max(1, round(0.10 * tr_n.size))]
    rest = rng.permutation(np.setdiff1d(np.flatnonzero(c != normal), tr_a))
    n_va_a = max(2, round(0.25 * va_n.size))  # 20% of validation rows
    va_a, te_a = rest[:n_va_a], rest[n_va_a : n_va_a + te_n.size]

    def part(ni: np.ndarray, ai: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.concatenate([ni, ai])
        return X[idx], np.r_[np.zeros(ni.size), np.ones(ai.size)].astype(np.int64), c[idx]

    X_tr, y_tr, _ = part(tr_n, tr_a)
    X_va, y_va, _ = part(va_n, va_a)
    X_te, y_te, c_te = part(te_n, te_a)
    unseen = [d for d in others if d not in seen]
    desc = (
        f"sklearn digits (8x8), normal digit {normal}; train: {tr_n.size} normal + {tr_a.size} "
        f"labelled anomalies from digits {seen}; validation: {va_n.size} normal + {va_a.size} "
        f"anomalies (all other digits); test: {te_n.size} normal + {te_a.size} anomalies from all "
        f"other digits, {int(np.isin(c_te[y_te == 1], unseen).sum())} of them from digits "
        f"{unseen} never seen in training"
    )
    return DemoSplit(X_tr, y_tr, X_va, y_va, X_te, y_te, c_te, seen, desc)


def run_demo(
    normal: int = 0, *, seed: int = 0, max_epochs: int = 300, verbose: int = 1
) -> dict[str, Any]:
    """Fit AnoEAN and a one-class SVM on :func:`digits_split`; return metrics and timings."""
    from anoean.models.anoean.detector import AnoEAN

    split = digits_split(normal, seed=seed)
    results: dict[str, Any] = {"split": split.description, "methods": {}}
    t0 = time.perf_counter()
    model = AnoEAN(
        latent_dim=16,
        batch_size=200,
        max_epochs=max_epochs,
        patience=50,
        random_state=seed,
        device="cpu",
        verbose=verbose,
    ).fit(split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val)
    fit_s = time.perf_counter() - t0
    scores = model.anomaly_score(split.X_test)
    results["methods"]["AnoEAN"] = {**evaluate(split.y_test, scores), "fit_s": fit_s}
    results["methods"]["OCSVM (RBF)"] = _ocsvm(split)
    return results


def _ocsvm(split: DemoSplit) -> dict[str, float]:
    """The package's one-class SVM on the training normals, nu and gamma picked on validation
    AUC-PR (inputs are already in [0, 1], so no further scaling)."""
    from anoean.baselines import OCSVM
    from anoean.experiments.search import select_hyperparameters

    t0 = time.perf_counter()
    search = select_hyperparameters(
        OCSVM,
        {"nu": [0.05, 0.1, 0.5], "gamma": ["scale", 0.01, 0.1]},
        split.X_train,
        split.y_train,
        split.X_val,
        split.y_val,
        base_params={"scaling": "none"},
    )
    fit_s = time.perf_counter() - t0
    scores = search.best_estimator.anomaly_score(split.X_test)
    return {**evaluate(split.y_test, scores), "fit_s": fit_s}
