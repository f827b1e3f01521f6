"""Two-class SVM with an RBF kernel, trained on normal rows plus the labelled anomalies.

This is the paper's supervised baseline: it sees the same few labelled anomalies as AnoEAN.
Anomalies are rare, so the classes are reweighted inversely to their frequency
(``class_weight="balanced"``: weight n / (2 n_class)), which makes misclassifying an anomaly
as costly in total as misclassifying the normals. The score is libsvm's decision value
``f(x) = sum_i c_i K(x, s_i) + b``, the signed distance to the margin (up to the constant
1 / ||w||, which changes no ranking), positive on the anomaly side.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from anoean.models.kernel.base import KernelDetector


class SVM(KernelDetector):
    """Two-class RBF SVM on normals vs labelled anomalies, with balanced class weights.

    Parameters
    ----------
    C : float, default=1.0
        Soft-margin penalty (before class weighting).
    gamma : {"scale", "auto"} or float, default="scale"
        RBF width on the *scaled* inputs: "scale" is 1 / (p * var(X)), "auto" is 1 / p.
    scaling : {"auto", "standard", "minmax", "none"}, default="auto"
        Input scaling fitted on the training rows: "auto" standardises tables and leaves
        images as they are. Images are flattened.
    validation_fraction : float, default=0.2
        Share of each class held out as validation data when ``X_val`` is not given.
    cache_size : float, default=500
        libsvm's kernel cache in MB (speed only).
    contamination, target_false_alarm, random_state, verbose
        As for :class:`anoean.AnoEAN` (``random_state`` only seeds the hold-out split).

    Attributes
    ----------
    support_vectors_, dual_coef_, intercept_, gamma_, shift_, scale_
        As for :class:`~anoean.baselines.OCSVM`; positive decision values mean "anomaly".

    Raises
    ------
    ValueError
        From ``fit`` when the training part of ``y`` holds no anomaly: a two-class SVM cannot
        be trained on one class.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean.baselines import SVM
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(200, 3)), rng.normal(4, 1, size=(20, 3))])
    >>> y = np.r_[np.zeros(200), np.ones(20)]
    >>> det = SVM(random_state=0).fit(X, y)
    >>> bool(det.anomaly_score([[4.0, 4.0, 4.0]])[0] > det.anomaly_score([[0.0, 0.0, 0.0]])[0])
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **KernelDetector._parameter_constraints,
        "C": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        C: float = 1.0,
        gamma: str | float = "scale",
        scaling: str = "auto",
        validation_fraction: float = 0.2,
        cache_size: float = 500,
        contamination: float | None = None,
        target_false_alarm: float = 0.05,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.scaling = scaling
        self.validation_fraction = validation_fraction
        self.cache_size = cache_size
        self.contamination = contamination
        self.target_false_alarm = target_false_alarm
        self.random_state = random_state
        self.verbose = verbose

    def _rows_to_fit(self, y: np.ndarray) -> np.ndarray:
        if not (y == 1).any():
            raise ValueError(
                "SVM is a two-class (supervised) baseline: the training data must hold labelled "
                "anomalies (y == 1); use OCSVM for normal-only data"
            )
        return np.ones(y.shape[0], dtype=bool)

    def _fit_svm(self, data: np.ndarray, y: np.ndarray, kernel: str, gamma: float) -> Any:
        from sklearn.svm import SVC

        return SVC(
            kernel=kernel,
            C=self.C,
            gamma=gamma,
            class_weight="balanced",
            cache_size=self.cache_size,
        ).fit(data, y)

    def _anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._decision(X)


__all__ = ["SVM"]
