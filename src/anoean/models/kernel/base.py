"""What OCSVM and SVM share: input scaling, the RBF gamma, and a pickle-free scorer.

A fitted RBF SVM (one-class or two-class) is the expansion

    f(x) = sum_i c_i * exp(-gamma * ||x - s_i||^2) + b

over its support vectors s_i. libsvm fits it (through scikit-learn); we then keep only the
arrays (support vectors, dual coefficients c, intercept b, gamma, and the input scaling) and
evaluate f with vectorised numpy in float64, in row chunks that bound memory. The model file
is therefore plain arrays in safetensors, and scoring needs neither libsvm nor pickle.

*Fitting speed.* libsvm evaluates the RBF kernel row by row with its own scalar loops; on
wide inputs (784 MNIST pixels) that is most of the fit. Up to :data:`MAX_GRAM_ROWS` training
rows we instead hand libsvm the kernel matrix (``kernel="precomputed"``), built from the
squared distances with one BLAS matrix product in float64: the same optimisation problem,
the same support vectors (dual coefficients agree to ~1e-13). Inside :func:`gram_cache`
(which :func:`anoean.experiments.search.select_hyperparameters` opens) the squared distances
are computed once per training matrix and shared by every configuration of a grid search.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from abc import abstractmethod
from collections.abc import Iterator
from numbers import Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from anoean.core.detector import BaseDetector
from anoean.core.runtime import make_generators, resolve_seed
from anoean.core.splits import holdout_split, resolve_scaling, scaling_stats

logger = logging.getLogger("anoean")

#: budget for one chunk's kernel matrix (rows x support vectors, float64)
KERNEL_CHUNK_BYTES = 64 * 2**20
#: largest training set fitted through a precomputed kernel matrix (two n x n float64
#: matrices: 1 GiB at this size); above it libsvm computes the kernel itself
MAX_GRAM_ROWS = 8192

#: squared-distance matrices of the open :func:`gram_cache` scopes (None: no scope open)
_SQ_DIST_CACHE: dict[tuple[tuple[int, ...], bytes], np.ndarray] | None = None


@contextlib.contextmanager
def gram_cache() -> Iterator[None]:
    """Within this scope, fits on the same scaled training matrix share its squared
    distances (a grid search computes them once instead of once per configuration). The
    cache is dropped when the outermost scope closes."""
    global _SQ_DIST_CACHE
    outer = _SQ_DIST_CACHE is None
    if outer:
        _SQ_DIST_CACHE = {}
    try:
        yield
    finally:
        if outer:
            _SQ_DIST_CACHE = None


def squared_distances(X: np.ndarray) -> np.ndarray:
    """``||x_i - x_j||^2`` for every pair of rows of X (float64, clipped at 0, zero
    diagonal); cached inside :func:`gram_cache`. Treat the result as read-only."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    cache = _SQ_DIST_CACHE
    key = None
    if cache is not None:
        key = (X.shape, hashlib.blake2b(X.data, digest_size=16).digest())
        hit = cache.get(key)
        if hit is not None:
            return hit
    sq = np.einsum("ij,ij->i", X, X)
    d2 = _sq_dists(X, sq, X, sq)
    np.fill_diagonal(d2, 0.0)
    if cache is not None and key is not None:
        d2.setflags(write=False)
        cache.clear()  # one training matrix at a time: bounded memory
        cache[key] = d2
    return d2


def rbf_gram(X: np.ndarray, gamma: float) -> np.ndarray:
    """The RBF kernel matrix ``exp(-gamma ||x_i - x_j||^2)`` of the rows of X (float64)."""
    K = squared_distances(X) * (-gamma)
    np.exp(K, out=K)
    return K


def _sq_dists(A: np.ndarray, a_sq: np.ndarray, B: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||^2`` from ``||a||^2 + ||b||^2 - 2 a.b`` (one matrix product, in place,
    so the only n x m array is the result), clipped at 0 against round-off."""
    d2 = A @ B.T
    d2 *= -2.0
    d2 += a_sq[:, None]
    d2 += b_sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    return d2


def rbf_expansion(
    X: np.ndarray, sv: np.ndarray, coef: np.ndarray, intercept: float, gamma: float
) -> np.ndarray:
    """``f(x) = coef . exp(-gamma ||x - sv||^2) + intercept`` for every row of X (float64).

    Squared distances come from ``||x||^2 + ||s||^2 - 2 x.s`` (one matrix product per chunk),
    clipped at 0 against round-off.
    """
    X = np.asarray(X, dtype=np.float64)
    sv = np.asarray(sv, dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    out = np.empty(X.shape[0], dtype=np.float64)
    if sv.shape[0] == 0:
        out.fill(intercept)
        return out
    sv_sq = np.einsum("ij,ij->i", sv, sv)
    step = max(1, KERNEL_CHUNK_BYTES // (8 * sv.shape[0]))
    for s in range(0, X.shape[0], step):
        xb = X[s : s + step]
        d2 = _sq_dists(xb, np.einsum("ij,ij->i", xb, xb), sv, sv_sq)
        out[s : s + step] = np.exp(-gamma * d2) @ coef + intercept
    return out


class KernelDetector(BaseDetector):
    """Base of the RBF-kernel baselines (not a detector by itself)."""

    __abstract__ = True

    _parameter_constraints: ClassVar[dict] = {
        **BaseDetector._parameter_constraints,
        "gamma": [StrOptions({"scale", "auto"}), Interval(Real, 0, None, closed="neither")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "scaling": [StrOptions({"auto", "standard", "minmax", "none"})],
        "cache_size": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def _accepts_images(self) -> bool:
        return bool(getattr(self, "_image_input", False))

    def _validate_X(self, X: Any, *, reset: bool, name: str = "X") -> np.ndarray:
        # Tables take scikit-learn's full path (feature names, n_features_in_); image batches
        # (n, H, W) / (n, C, H, W) are accepted too and flattened, as an RBF kernel only sees
        # a vector of pixels. At fit time the input decides; afterwards the fitted shape does.
        if reset:
            # not np.ndim: it dispatches through __array_function__, which array-likes
            # need not implement; ragged nested lists give 1 and take the table path
            nd = X.ndim if hasattr(X, "ndim") else np.asarray(X, dtype=object).ndim
            self._image_input = nd > 2
        else:
            self._image_input = len(self.input_shape_) > 1
        return super()._validate_X(X, reset=reset, name=name)

    @staticmethod
    def _flat(X: np.ndarray) -> np.ndarray:
        return X.reshape(X.shape[0], -1)

    def _resolve_gamma(self, Xs: np.ndarray) -> float:
        """Numeric gamma from "scale" (1 / (p var(X))), "auto" (1 / p) or a number."""
        p = Xs.shape[1]
        if self.gamma == "scale":
            var = float(Xs.astype(np.float64).var())
            return 1.0 / (p * var) if var > 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / p
        return float(self.gamma)

    def _split(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self.seed_ = resolve_seed(self.random_state)
        if X_val is None:
            rng, _ = make_generators(self.seed_)
            tr, va = holdout_split(y, self.validation_fraction, rng)
            return X[tr], y[tr], X[va], y[va]
        assert y_val is not None
        return X, y, X_val, y_val

    def _set_scaling(self, X_fit: np.ndarray) -> np.ndarray:
        # as AnoEAN: standardise tables, leave image pixels as they are
        kind = resolve_scaling(self.scaling, images=len(self.input_shape_) > 1)
        shift, scale = scaling_stats(self._flat(X_fit), kind)
        self.shift_, self.scale_ = shift.astype(np.float64), scale.astype(np.float64)
        return self._transform(X_fit)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (self._flat(X).astype(np.float64) - self.shift_) / self.scale_

    def _store(self, model: Any, gamma: float, Xs: np.ndarray) -> None:
        """Keep libsvm's solution as plain arrays (the sklearn object is not kept)."""
        if getattr(model, "kernel", None) == "precomputed":
            sv = Xs[model.support_]
        else:
            sv = model.support_vectors_
        self.support_vectors_ = np.ascontiguousarray(sv, dtype=np.float64)
        self.dual_coef_ = np.asarray(model.dual_coef_, dtype=np.float64).ravel()
        self.intercept_ = float(np.asarray(model.intercept_).ravel()[0])
        self.gamma_ = float(gamma)
        self.n_support_ = int(self.support_vectors_.shape[0])

    def _decision(self, X: np.ndarray) -> np.ndarray:
        return rbf_expansion(
            self._transform(X),
            self.support_vectors_,
            self.dual_coef_,
            self.intercept_,
            self.gamma_,
        )

    @abstractmethod
    def _fit_svm(self, data: np.ndarray, y: np.ndarray, kernel: str, gamma: float) -> Any:
        """Fit libsvm and return the scikit-learn model. ``data`` is the scaled rows
        (``kernel="rbf"``) or their RBF kernel matrix (``kernel="precomputed"``)."""

    @abstractmethod
    def _rows_to_fit(self, y: np.ndarray) -> np.ndarray:
        """Boolean mask of the training rows the SVM is fitted on."""

    def _fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        X_all = X
        X, y, X_val, y_val = self._split(X, y, X_val, y_val)
        rows = self._rows_to_fit(y)
        Xs = self._set_scaling(X[rows])
        gamma = self._resolve_gamma(Xs)
        if Xs.shape[0] <= MAX_GRAM_ROWS:
            model = self._fit_svm(rbf_gram(Xs, gamma), y[rows], "precomputed", gamma)
        else:
            model = self._fit_svm(Xs, y[rows], "rbf", gamma)
        self._store(model, gamma, Xs)
        self.fit_time_ = time.perf_counter() - t0
        logger.debug("%s: %d support vectors", type(self).__name__, self.n_support_)
        # scores of all training rows only serve the contamination threshold
        if getattr(self, "contamination", None) is not None:
            all_scores = self._anomaly_score(X_all)
        else:
            all_scores = np.empty(0, dtype=np.float64)
        return self._anomaly_score(X_val)[y_val == 0], all_scores

    # ------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "seed_": self.seed_,
            "intercept_": self.intercept_,
            "gamma_": self.gamma_,
            "fit_time_": self.fit_time_,
        }
        arrays = {
            "support_vectors": self.support_vectors_,
            "dual_coef": self.dual_coef_,
            "shift": self.shift_,
            "scale": self.scale_,
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        sv = np.asarray(arrays["support_vectors"], dtype=np.float64)
        coef = np.asarray(arrays["dual_coef"], dtype=np.float64)
        shift = np.asarray(arrays["shift"], dtype=np.float64)
        scale = np.asarray(arrays["scale"], dtype=np.float64)
        p = int(np.prod(self.input_shape_))
        if sv.ndim != 2 or sv.shape[1] != p:
            raise ValueError(f"support vectors have shape {sv.shape}; expected (n, {p})")
        if coef.shape != (sv.shape[0],):
            raise ValueError(
                f"dual coefficients have shape {coef.shape}; expected ({sv.shape[0]},)"
            )
        if shift.shape != (p,) or scale.shape != (p,):
            raise ValueError(f"scaling arrays do not have {p} features")
        if not (np.all(np.isfinite(sv)) and np.all(np.isfinite(coef)) and np.all(scale > 0)):
            raise ValueError("support vectors, coefficients or scales are not finite/positive")
        gamma = float(state["gamma_"])
        if not gamma > 0:
            raise ValueError(f"gamma_ must be positive; got {gamma}")
        self.support_vectors_, self.dual_coef_ = sv, coef
        self.shift_, self.scale_ = shift, scale
        self.intercept_ = float(state["intercept_"])
        self.gamma_ = gamma
        self.n_support_ = int(sv.shape[0])
        self.seed_ = int(state["seed_"])
        self.fit_time_ = float(state["fit_time_"])
