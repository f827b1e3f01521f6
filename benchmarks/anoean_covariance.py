"""Validation-only study of the covariance estimate behind AnoEAN's score (no test data).

Usage (an mnist-nvm case of the reproduction: n normal digits, seed, latent size)::

    ANOEAN_DATA=../shared/datasets PYTHONPATH=src python benchmarks/anoean_covariance.py 3 0 32

Prints ``RESULT {json}``; the outputs behind docs/results.md are in
docs/results/investigation/cov_*.txt.

Fits AnoEAN as the reproduction does for one case and seed (selected latent size), then
compares ways to fit (mu, Sigma) by 2-fold cross-fitting on the validation normals: fit on
one half, score the other half's normals plus every validation anomaly, average the two
folds' AUC-PR. In-sample (the package's choice, fit and score on the same normals) is
shown too, for reference: it is optimistic.
"""

import json
import sys

import numpy as np
from sklearn.covariance import OAS, LedoitWolf

from anoean import AnoEAN
from anoean.core.metrics import aucpr
from anoean.data.protocol import make_split
from anoean.experiments.runner import mnist_options, nvm_normal_digits

n, seed, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
split = make_split("mnist-nvm", seed=seed, **mnist_options(nvm_normal_digits(n, seed)))
m = AnoEAN(
    encoder="conv", latent_dim=d, max_epochs=30, patience=10, random_state=seed, device="cpu"
)
m.fit(split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val)
Zv = m.transform(split.X_val).astype(np.float64)
Ztr = m.transform(split.X_train[split.y_train == 0]).astype(np.float64)
yv = split.y_val
normal_idx = np.flatnonzero(yv == 0)
rng = np.random.default_rng(0)
perm = rng.permutation(normal_idx)
folds = [perm[: len(perm) // 2], perm[len(perm) // 2 :]]


def maha(mu, cov, Z):
    w, V = np.linalg.eigh(cov)
    w = np.maximum(w, 1e-6 * w.mean())
    D = (Z - mu) @ V / np.sqrt(w)
    return np.sqrt((D**2).sum(1))


def score_with(fit):
    res = []
    for a, b in ((0, 1), (1, 0)):
        mu, cov = fit(Zv[folds[a]])
        rows = np.r_[folds[b], np.flatnonzero(yv == 1)]
        res.append(aucpr(yv[rows], maha(mu, cov, Zv[rows])))
    return float(np.mean(res))


def emp(Z):
    return (Z.mean(0), np.cov(Z, rowvar=False))


def lw(Z):
    return (Z.mean(0), LedoitWolf().fit(Z).covariance_)


def oas(Z):
    return (Z.mean(0), OAS().fit(Z).covariance_)


def ident(Z):
    return (Z.mean(0), np.eye(Z.shape[1]))


def train(Z):
    return (Ztr.mean(0), np.cov(Ztr, rowvar=False))


out = {
    "n": n,
    "seed": seed,
    "d": d,
    "best_epoch": m.best_epoch_,
    "n_val_normals": int((yv == 0).sum()),
    "in_sample_empirical": aucpr(yv, m.anomaly_score(split.X_val)),
    "cv_empirical": score_with(emp),
    "cv_ledoit_wolf": score_with(lw),
    "cv_oas": score_with(oas),
    "cv_identity_cov": score_with(ident),
    "cv_train_normals_cov": score_with(train),
    "val_code_var_min_med_max": [float(x) for x in np.percentile(Zv[yv == 0].var(0), [0, 50, 100])],
}
print("RESULT", json.dumps(out))
