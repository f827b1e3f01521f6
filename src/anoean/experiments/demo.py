"""The embedded demo: AnoEANPlus, AnoEAN and the two SVMs on scikit-learn's bundled digits,
with anomaly kinds never seen in training.

Nothing is downloaded: :func:`sklearn.datasets.load_digits` ships 1,797 8x8 images with
scikit-learn. The demo's task (:func:`unseen_kinds_split`) is the library's use case: the
normal class is several digits (a normal class with several modes, as traffic is), a few
labelled anomalies come from two other digits, the validation set knows only those two, and
the test set holds anomalies of every other digit, most of them of kinds never seen. It
reports each method's AUC-PR on the whole test set and its AUROC on the unseen kinds alone.
:func:`digits_split` is the earlier one-digit task.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoean.core.datachecks import DataWarning
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

    (X_tr, y_tr, _), (X_va, y_va, _), (X_te, y_te, c_te) = _parts(
        X, c, (tr_n, tr_a), (va_n, va_a), (te_n, te_a)
    )
    unseen = [d for d in others if d not in seen]
    desc = (
        f"sklearn digits (8x8), normal digit {normal}; train: {tr_n.size} normal + {tr_a.size} "
        f"labelled anomalies from digits {seen}; validation: {va_n.size} normal + {va_a.size} "
        f"anomalies (all other digits); test: {te_n.size} normal + {te_a.size} anomalies from all "
        f"other digits, {int(np.isin(c_te[y_te == 1], unseen).sum())} of them from digits "
        f"{unseen} never seen in training"
    )
    return DemoSplit(X_tr, y_tr, X_va, y_va, X_te, y_te, c_te, seen, desc)


def _parts(
    X: np.ndarray, c: np.ndarray, *pairs: tuple[np.ndarray, np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each (normal indices, anomaly indices): the rows, their 0/1 labels, their digits."""
    out = []
    for ni, ai in pairs:
        idx = np.concatenate([ni, ai])
        y = np.r_[np.zeros(ni.size), np.ones(ai.size)].astype(np.int64)
        out.append((X[idx], y, c[idx]))
    return out


#: the demo's normal digits: a normal class with several modes
DEMO_NORMAL = (0, 1, 2, 3, 4)


def unseen_kinds_split(
    normal: Sequence[int] = DEMO_NORMAL, *, n_seen: int = 2, seed: int = 0
) -> DemoSplit:
    """Several normal digits; labelled anomalies of ``n_seen`` other digits; test anomalies
    of every other digit.

    The normal rows go 60% / 15% / 25% to train / validation / test. Training gets labelled
    anomalies equal to 5% of its normals, and validation 10% of its rows, both drawn only
    from the ``n_seen`` seed-chosen "seen" digits: what a user has labelled is all they can
    validate on. The test set holds as many anomalies as normals, drawn from all the other
    digits, most of them from digits never seen in training or validation.
    """
    from sklearn.datasets import load_digits

    normal = sorted({int(d) for d in normal})
    if not normal or any(d not in range(10) for d in normal):
        raise ValueError(f"normal must be digits 0-9; got {normal!r}")
    others = [d for d in range(10) if d not in normal]
    if not 1 <= n_seen < len(others):
        raise ValueError(
            f"n_seen must be between 1 and {len(others) - 1} (some other digit must stay "
            f"unseen); got {n_seen}"
        )
    rng = np.random.default_rng(seed)
    data = load_digits()
    X, c = data.data.astype(np.float32) / 16.0, data.target
    seen = sorted(int(d) for d in rng.choice(others, size=n_seen, replace=False))
    idx_n = rng.permutation(np.flatnonzero(np.isin(c, normal)))
    n_tr, n_va = int(0.60 * idx_n.size), int(0.15 * idx_n.size)
    tr_n, va_n, te_n = idx_n[:n_tr], idx_n[n_tr : n_tr + n_va], idx_n[n_tr + n_va :]
    pool_seen = rng.permutation(np.flatnonzero(np.isin(c, seen)))
    n_tr_a, n_va_a = max(2, round(0.05 * tr_n.size)), max(2, round(0.10 * va_n.size))
    tr_a, va_a = pool_seen[:n_tr_a], pool_seen[n_tr_a : n_tr_a + n_va_a]
    rest = rng.permutation(np.setdiff1d(np.flatnonzero(np.isin(c, others)), np.r_[tr_a, va_a]))
    te_a = rest[: te_n.size]

    (X_tr, y_tr, _), (X_va, y_va, _), (X_te, y_te, c_te) = _parts(
        X, c, (tr_n, tr_a), (va_n, va_a), (te_n, te_a)
    )
    unseen = [d for d in others if d not in seen]
    desc = (
        f"sklearn digits (8x8), normal digits {normal}; train: {tr_n.size} normal + "
        f"{tr_a.size} labelled anomalies of digits {seen}; validation: {va_n.size} normal + "
        f"{va_a.size} anomalies of digits {seen}; test: {te_n.size} normal + {te_a.size} "
        f"anomalies of digits {others}, {int(np.isin(c_te[y_te == 1], unseen).sum())} of them "
        f"of digits {unseen}, never seen in training"
    )
    return DemoSplit(X_tr, y_tr, X_va, y_va, X_te, y_te, c_te, seen, desc)


def run_demo(
    normal: Sequence[int] = DEMO_NORMAL,
    *,
    seed: int = 0,
    max_epochs: int = 300,
    verbose: int = 1,
) -> dict[str, Any]:
    """Fit AnoEANPlus (the recommended detector), AnoEAN (the paper's), the class-weighted
    SVM and the one-class SVM on :func:`unseen_kinds_split`; return the test metrics (plus
    ``auroc_unseen``: the AUROC of the test normals against the unseen kinds alone) and the
    fit times. Every method gets the same training and validation rows."""
    import torch

    split = unseen_kinds_split(normal, seed=seed)
    results: dict[str, Any] = {"split": split.description, "methods": {}}
    threads = torch.get_num_threads()
    # one thread: these networks are small, and a second intra-op thread on a busy machine
    # (the test suite beside it, a browser) spends more time waiting for its core than it
    # saves (measured: AnoEANPlus's fit 11.6 s with 1 thread, 56 s with 2, both cores busy)
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            # the digits' corner pixels are always blank: known, and said once in the docs
            warnings.simplefilter("ignore", DataWarning)
            _run_methods(split, results, max_epochs, seed, verbose)
    finally:
        torch.set_num_threads(threads)
    return results


def _run_methods(
    split: DemoSplit,
    results: dict[str, Any],
    max_epochs: int,
    seed: int,
    verbose: int,
) -> None:
    """Fit every method of the demo on ``split``; its metrics go to ``results["methods"]``."""
    from anoean.models.anoean.detector import AnoEAN
    from anoean.models.anoean_plus.detector import AnoEANPlus

    common: dict[str, Any] = dict(
        max_epochs=max_epochs, random_state=seed, device="cpu", verbose=verbose
    )
    neural = {
        "AnoEANPlus": AnoEANPlus(**common),
        "AnoEAN": AnoEAN(latent_dim=16, patience=50, **common),
    }
    for name, model in neural.items():
        t0 = time.perf_counter()
        model.fit(split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val)
        fit_s = time.perf_counter() - t0
        results["methods"][name] = _metrics(split, model.anomaly_score(split.X_test), fit_s)
    results["methods"]["SVM (RBF, class-weighted)"] = _kernel(
        split, "SVM", {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01, 0.1]}
    )
    results["methods"]["OCSVM (RBF)"] = _kernel(
        split, "OCSVM", {"nu": [0.05, 0.1, 0.5], "gamma": ["scale", 0.01, 0.1]}
    )


def _metrics(split: DemoSplit, scores: np.ndarray, fit_s: float) -> dict[str, float]:
    """The paper's metrics on the test set, the AUROC on its unseen kinds, the fit time."""
    from sklearn.metrics import roc_auc_score

    unseen = (split.y_test == 0) | ~np.isin(split.c_test, split.seen)
    auroc_unseen = float(roc_auc_score(split.y_test[unseen], scores[unseen]))
    return {**evaluate(split.y_test, scores), "auroc_unseen": auroc_unseen, "fit_s": fit_s}


def _kernel(split: DemoSplit, name: str, grid: dict[str, list[Any]]) -> dict[str, float]:
    """The package's SVM or one-class SVM (which trains on the normals only), its grid picked
    on validation AUC-PR (inputs are already in [0, 1], so no further scaling)."""
    from anoean import baselines
    from anoean.experiments.search import select_hyperparameters

    t0 = time.perf_counter()
    search = select_hyperparameters(
        getattr(baselines, name),
        grid,
        split.X_train,
        split.y_train,
        split.X_val,
        split.y_val,
        base_params={"scaling": "none"},
    )
    fit_s = time.perf_counter() - t0
    return _metrics(split, search.best_estimator.anomaly_score(split.X_test), fit_s)
