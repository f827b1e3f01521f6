"""One-class SVM with an RBF kernel (Schölkopf et al., 2001), trained on normal rows only.

libsvm (through :class:`sklearn.svm.OneClassSVM`) finds the expansion
``f(x) = sum_i c_i K(x, s_i) - rho``, positive inside the learned support of the normal
data. Our anomaly score is ``-f(x)``: the signed distance to the boundary, positive outside.
Labelled anomalies in ``y`` are ignored (the method is one-class); validation labels are
used only by :func:`anoean.experiments.search.select_hyperparameters`.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from anoean.models.kernel.base import KernelDetector


class OCSVM(KernelDetector):
    """One-class SVM (RBF kernel) on the normal training rows.

    Parameters
    ----------
    nu : float in (0, 1], default=0.1
        Upper bound on the fraction of training normals outside the boundary (and lower
        bound on the fraction of support vectors).
    gamma : {"scale", "auto"} or float, default="scale"
        RBF width on the *scaled* inputs: "scale" is 1 / (p * var(X)), "auto" is 1 / p.
    scaling : {"auto", "standard", "minmax", "none"}, default="auto"
        Input scaling fitted on the normal training rows: "auto" standardises tables and
        leaves images as they are. Images are flattened.
    validation_fraction : float, default=0.2
        Share of each class held out as validation data when ``X_val`` is not given (its
        normal rows set the ``target_false_alarm`` threshold).
    cache_size : float, default=500
        libsvm's kernel cache in MB (speed only).
    contamination, target_false_alarm, random_state, verbose
        As for :class:`anoean.AnoEAN` (``random_state`` only seeds the hold-out split).

    Attributes
    ----------
    support_vectors_ : ndarray (n_support, p)
        Support vectors, in scaled coordinates.
    dual_coef_ : ndarray (n_support,)
        Their coefficients c_i.
    intercept_, gamma_ : float
        -rho and the numeric RBF gamma.
    shift_, scale_ : ndarray (p,)
        Input scaling.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean.baselines import OCSVM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> det = OCSVM(random_state=0).fit(X)
    >>> bool(det.anomaly_score([[6.0, 6.0, 6.0]])[0] > det.anomaly_score([[0.0, 0.0, 0.0]])[0])
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **KernelDetector._parameter_constraints,
        "nu": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
        *,
        nu: float = 0.1,
        gamma: str | float = "scale",
        scaling: str = "auto",
        validation_fraction: float = 0.2,
        cache_size: float = 500,
        contamination: float | None = None,
        target_false_alarm: float = 0.05,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.nu = nu
        self.gamma = gamma
        self.scaling = scaling
        self.validation_fraction = validation_fraction
        self.cache_size = cache_size
        self.contamination = contamination
        self.target_false_alarm = target_false_alarm
        self.random_state = random_state
        self.verbose = verbose

    def _rows_to_fit(self, y: np.ndarray) -> np.ndarray:
        return y == 0

    def _fit_svm(self, data: np.ndarray, y: np.ndarray, kernel: str, gamma: float) -> Any:
        from sklearn.svm import OneClassSVM

        return OneClassSVM(kernel=kernel, nu=self.nu, gamma=gamma, cache_size=self.cache_size).fit(
            data
        )

    def _anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return -self._decision(X)


__all__ = ["OCSVM"]
