"""Mahalanobis scoring against a Gaussian N(mu, Sigma) fitted on encoded normal data.

The paper scores a point by the Mahalanobis distance of its code E(x) to N(mu, Sigma), with
mu and Sigma estimated on the codes of the validation normals.

Singular covariance guard
-------------------------
Sigma can be singular or ill-conditioned: fewer normal codes than dimensions, an encoder
that collapsed a direction, or float32 round-off. We eigendecompose Sigma and floor its
eigenvalues at ``rel_floor * max(mean eigenvalue, tiny)`` (``rel_floor = 1e-6`` by default).
This is a ridge on the weakest directions only: well-conditioned covariances are left
untouched, and the score stays finite and monotone in every direction. The whitening matrix
``W = V diag(1/sqrt(lambda))`` is stored, so scoring is ``||(z - mu) W||``: one matrix
product, identical in torch, ONNX and numpy.

Finite scores
-------------
The distance is computed in float64 in every engine. A code is float32 (at most 3.4e38 in
magnitude) and the floor bounds each entry of ``W`` by about 1e9, so ``||(z - mu) W||``
stays far below float64's 1.8e308: finite codes always give a finite score. A code that is
itself not finite (an encoder overflowed on an extreme input) is not scored: the detectors
raise a ``ValueError`` naming the row and column
(:meth:`anoean.core.detector.BaseDetector.anomaly_score`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GaussianScorer:
    """mean ``mu`` (d,), covariance ``cov`` (d, d) and whitening matrix ``whiten`` (d, d)."""

    mu: np.ndarray
    cov: np.ndarray
    whiten: np.ndarray
    n_floored: int = 0

    @classmethod
    def fit(cls, Z: np.ndarray, rel_floor: float = 1e-6) -> GaussianScorer:
        """Estimate mu and Sigma from codes ``Z`` (n, d) in float64."""
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[0] < 1:
            raise ValueError(f"need at least one code to fit the Gaussian; got shape {Z.shape}")
        mu = Z.mean(axis=0)
        if Z.shape[0] > 1:
            cov = np.cov(Z, rowvar=False, ddof=1).reshape(Z.shape[1], Z.shape[1])
        else:
            cov = np.zeros((Z.shape[1], Z.shape[1]))
        return cls.from_moments(mu, cov, rel_floor=rel_floor)

    @classmethod
    def from_moments(
        cls, mu: np.ndarray, cov: np.ndarray, rel_floor: float = 1e-6
    ) -> GaussianScorer:
        cov = 0.5 * (cov + cov.T)
        evals, evecs = np.linalg.eigh(cov)
        floor = rel_floor * max(float(np.mean(np.abs(evals))), 1e-12)
        n_floored = int((evals < floor).sum())
        evals = np.maximum(evals, floor)
        whiten = evecs / np.sqrt(evals)[None, :]
        return cls(mu=mu, cov=cov, whiten=whiten, n_floored=n_floored)

    def distance(self, Z: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``Z`` (numpy, float64 internally)."""
        W = (np.asarray(Z, dtype=np.float64) - self.mu) @ self.whiten
        return np.sqrt(np.einsum("ij,ij->i", W, W))

    def torch_params(self, device, dtype=None):  # type: ignore[no-untyped-def]
        import torch

        dtype = dtype or torch.float64
        return (
            torch.as_tensor(self.mu, dtype=dtype, device=device),
            torch.as_tensor(self.whiten, dtype=dtype, device=device),
        )


def mahalanobis_torch(Z, mu, whiten):  # type: ignore[no-untyped-def]
    """Torch version of :meth:`GaussianScorer.distance` for codes already on the device.

    Computed in float64 whatever the codes' dtype (``mu`` and ``whiten`` are cast when they
    are not float64 already), so that finite codes always give a finite distance: a float32
    code can be as large as 3.4e38, whose square overflows float32 but not float64.
    """
    import torch

    W = (Z.to(torch.float64) - mu.to(torch.float64)) @ whiten.to(torch.float64)
    return W.pow(2).sum(dim=1).sqrt()


#: fewest validation normals a cross-fitted score accepts (two halves of at least 2 rows)
MIN_CROSS_FIT_NORMALS = 4


def validation_aucpr(
    codes: np.ndarray,
    y: np.ndarray,
    *,
    cross_fit: bool,
    seed: int = 0,
    fit_codes: np.ndarray | None = None,
) -> float:
    """AUC-PR of the Mahalanobis score on validation codes, the criterion of early stopping
    and model selection.

    ``cross_fit=False`` (the paper's rule) fits mu and Sigma on the validation normals and
    scores those same normals: their distances are too small, the more so as the latent
    size grows relative to the number of normals, so the criterion is optimistic and favours
    large latent spaces (docs/results.md, "Why AnoEAN falls short"). ``cross_fit=True``
    splits the normals into two halves (a permutation drawn from ``seed``), fits the
    Gaussian on one half, scores the other half's normals and every anomaly, and averages
    the two halves' AUC-PR: each normal is scored by a Gaussian that never saw it.
    ``fit_codes`` (other normals' codes, e.g. the training normals') fits the Gaussian
    instead of the validation normals; every validation row is then held out, and
    ``cross_fit`` must be False.
    """
    from anoean.core.metrics import aucpr

    codes = np.asarray(codes, dtype=np.float64)
    y = np.asarray(y)
    normal = np.flatnonzero(y == 0)
    if fit_codes is not None:
        if cross_fit:
            raise ValueError("fit_codes and cross_fit=True exclude each other")
        return aucpr(y, GaussianScorer.fit(fit_codes).distance(codes))
    if not cross_fit:
        return aucpr(y, GaussianScorer.fit(codes[normal]).distance(codes))
    if normal.size < MIN_CROSS_FIT_NORMALS:
        raise ValueError(
            "a cross-fitted validation score needs at least "
            f"{MIN_CROSS_FIT_NORMALS} validation normals; got "
            f"{normal.size}"
        )
    perm = np.random.default_rng([seed, 2718]).permutation(normal)
    halves = (perm[: perm.size // 2], perm[perm.size // 2 :])
    anomalies = np.flatnonzero(y == 1)
    scores = []
    for fit_on, held_out in (halves, halves[::-1]):
        rows = np.concatenate([held_out, anomalies])
        dist = GaussianScorer.fit(codes[fit_on]).distance(codes[rows])
        scores.append(aucpr(y[rows], dist))
    return float(np.mean(scores))
