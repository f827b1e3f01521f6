"""The detector contract every anoean model follows.

A detector is a scikit-learn outlier detector with one more method, :meth:`anomaly_score`,
which is the paper's a(x): non-negative-ish, *higher for more anomalous*. Everything else is
derived from it, once, here:

* ``score_samples(X) = -anomaly_score(X)`` (scikit-learn's sign: higher is more normal);
* ``decision_function(X) = score_samples(X) - offset_`` (negative means outlier);
* ``predict(X)`` is +1 (inlier) or -1 (outlier).

The threshold ``offset_`` comes from one of two rules, chosen in ``fit``:

* ``contamination`` (a float in (0, 0.5]): the fraction of the training data (train and
  validation parts together) flagged as anomalous, as in scikit-learn's IsolationForest;
* otherwise ``target_false_alarm``: the rate of *validation normals* flagged as anomalous,
  which is what an operator with an alarm budget wants.

Persistence is data only: ``save`` writes a directory with ``config.json`` (parameters,
fitted scalars, versions, and the SHA-256 of the weights) and ``weights.safetensors``.
``load`` never executes anything from the files, checks the digest and every shape, and
raises :class:`ModelFileError` (a ``ValueError``) naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import abstractmethod
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import ClassifierTags
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from anoean.core.datachecks import warn_constant_columns, warn_squashed_columns

# The model-file format lives in a light module (numpy + safetensors only) so that the
# numpy scorer can read models without importing scikit-learn or torch; re-exported here.
from anoean.core.modelfile import (  # noqa: F401
    CONFIG_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    ModelFileError,
    jsonable_params,
    read_model_dir,
    seal,
    write_model_dir,
)
from anoean.core.registry import by_class
from anoean.core.runtime import versions
from anoean.core.splits import resolve_scaling
from anoean.core.validation import (
    UnscorableRowsError,
    _check_float32_range,
    _locate_non_numeric,
    check_finite,
    explain_overflow,
    validate_labels,
)


class BaseDetector(OutlierMixin, BaseEstimator):
    """Shared contract: input validation, score sign, thresholds, save/load.

    Subclasses implement :meth:`_fit`, :meth:`_anomaly_score`, :meth:`_get_state` and
    :meth:`_set_state`; they declare whether they take images with ``_accepts_images``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "contamination": [Interval(Real, 0, 0.5, closed="right"), None],
        "target_false_alarm": [Interval(Real, 0, 1, closed="neither")],
        "verbose": [Interval(Integral, 0, None, closed="left"), "boolean"],
    }

    # ----------------------------------------------------------------- validation
    def _accepts_images(self) -> bool:
        return False

    def _validate_X(self, X: Any, *, reset: bool, name: str = "X") -> np.ndarray:
        """Validate and convert X to float32, naming the first bad value (and the array, as
        ``name``: "X_val" for the validation data).

        Tabular data is (n, p); image models also take (n, H, W) and (n, C, H, W), which are
        normalised to (n, C, H, W).
        """
        allow_nd = self._accepts_images()
        try:
            if allow_nd:
                # images: n_features_in_ is not meaningful for (n, H, W) vs (n, 1, H, W);
                # the full row shape is checked below instead
                X = check_array(
                    X, dtype=[np.float64, np.float32], ensure_all_finite=False, allow_nd=True
                )
            else:
                # float64 first: other dtypes (integers, float16, objects) are converted to
                # float64, so that a value beyond float32 is named below, not seen as inf
                X = validate_data(
                    self,
                    X,
                    reset=reset,
                    dtype=[np.float64, np.float32],
                    ensure_all_finite=False,
                )
        except ValueError as exc:
            text = str(exc)
            if "convert" in text or "could not" in text or "dtype" in text:
                raise ValueError(_locate_non_numeric(X, name)) from exc
            if name != "X":  # scikit-learn's message calls every array X
                raise ValueError(f"{name}: {text}") from exc
            raise
        except TypeError as exc:
            if "parse" in str(exc):  # sparse input: scikit-learn's own message says what to do
                raise
            raise ValueError(_locate_non_numeric(X, name)) from exc
        _check_float32_range(np.asarray(X), name)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:
            X = X[:, None, :, :]
        if X.ndim not in (2, 4):
            raise ValueError(f"{name} must be 2-D (n, p) or an image batch; got shape {X.shape}")
        if reset:
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
            if allow_nd:
                self.n_features_in_ = int(np.prod(self.input_shape_))
        elif tuple(X.shape[1:]) != tuple(self.input_shape_):
            raise ValueError(
                f"{name} has rows of shape {tuple(X.shape[1:])}, but {type(self).__name__} was "
                f"fitted on rows of shape {tuple(self.input_shape_)}"
            )
        check_finite(X, name)
        return X

    def _validate_fit_inputs(
        self, X: Any, y: Any, X_val: Any, y_val: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        self._validate_params()
        X = self._validate_X(X, reset=True)
        if X.shape[0] < 2:
            raise ValueError(f"n_samples={X.shape[0]}: at least 2 samples are needed to fit")
        y = validate_labels(y, X.shape[0], "y")
        if y_val is not None and X_val is None:
            raise ValueError("y_val was given without X_val")
        if X_val is not None and y_val is None:
            raise ValueError(
                "X_val was given without y_val: pass y_val (0 = normal, 1 = anomaly) for every "
                "validation row, e.g. y_val=np.zeros(len(X_val)) if they are all normal"
            )
        if X_val is not None:
            X_val = self._validate_X(X_val, reset=False, name="X_val")
            y_val = validate_labels(y_val, X_val.shape[0], "y_val")
            if (y_val == 0).sum() == 0:
                raise ValueError("X_val holds no normal rows (y_val == 0): cannot fit the scorer")
        if (y == 0).sum() == 0:
            raise ValueError("the training data holds no normal rows (y == 0)")
        return X, y, X_val, y_val

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        sample_weight: Any = None,
    ) -> BaseDetector:
        """Fit on X (y: 1 = known anomaly, 0 = normal; None = all normal). Returns self.

        ``sample_weight`` is refused (``TypeError``, saying what to do instead): the
        detectors' objectives, early stopping, Gaussians and thresholds have no weighted
        form here. For records de-duplicated with counts, split off the validation records
        first, then repeat each record by its count: ``np.repeat(X, counts, axis=0)`` and
        the same for y, passing the validation part as ``X_val``, ``y_val``, so that copies
        of one record never land on both sides.
        """
        if sample_weight is not None:
            raise TypeError(
                f"{type(self).__name__}.fit does not take sample_weight. For records with "
                "counts, hold out the validation records first, then repeat each record by "
                "its count (np.repeat(X, counts, axis=0), and y likewise) and pass the "
                "held-out part as X_val, y_val, so that no record is on both sides"
            )
        X, y, X_val, y_val = self._validate_fit_inputs(X, y, X_val, y_val)
        names = getattr(self, "feature_names_in_", None)
        warn_constant_columns(X, names, stacklevel=3)
        scaling = getattr(self, "scaling", "none")
        if X.ndim == 2 and scaling != "none":
            kind = resolve_scaling(str(scaling), images=False)
            warn_squashed_columns(X, names, kind=kind, stacklevel=3)
        val_normal_scores, train_scores = self._fit(X, y, X_val, y_val)
        train_scores = np.asarray(train_scores, dtype=np.float64)
        if train_scores.size == X.shape[0]:
            self._check_scores(X, train_scores, "X (training data)")
        if not np.isfinite(val_normal_scores).all():
            if X_val is not None and y_val is not None:
                normal = np.flatnonzero(y_val == 0)
                if normal.size == np.size(val_normal_scores):
                    self._check_scores(X_val[normal], val_normal_scores, "X_val", index=normal)
            raise UnscorableRowsError(
                f"{type(self).__name__} gives non-finite scores to "
                f"{int((~np.isfinite(val_normal_scores)).sum())} validation normal row(s): "
                "the data holds values too large for the model's float32 arithmetic",
                np.flatnonzero(~np.isfinite(val_normal_scores)),
            )
        self._set_threshold(val_normal_scores, train_scores)
        return self

    @abstractmethod
    def _fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit the model; return anomaly scores of the validation normals and of all of X
        (training plus any held-out part), used to set the threshold."""

    def _set_threshold(self, val_normal_scores: np.ndarray, train_scores: np.ndarray) -> None:
        contamination = getattr(self, "contamination", None)
        if contamination is not None:
            self.threshold_ = float(np.percentile(train_scores, 100.0 * (1.0 - contamination)))
            self.threshold_rule_ = f"contamination={contamination}"
        else:
            fa = float(getattr(self, "target_false_alarm", 0.05))
            self.threshold_ = float(np.quantile(val_normal_scores, 1.0 - fa))
            self.threshold_rule_ = f"target_false_alarm={fa}"
        self.offset_ = -self.threshold_

    def set_threshold(self, X_normal: Any, *, target_false_alarm: float) -> BaseDetector:
        """Re-set the threshold so that ``target_false_alarm`` of ``X_normal`` is flagged."""
        if not 0.0 < target_false_alarm < 1.0:
            raise ValueError(f"target_false_alarm must be in (0, 1); got {target_false_alarm}")
        scores = self.anomaly_score(X_normal)
        self.threshold_ = float(np.quantile(scores, 1.0 - target_false_alarm))
        self.threshold_rule_ = f"target_false_alarm={target_false_alarm} (set_threshold)"
        self.offset_ = -self.threshold_
        return self

    # ------------------------------------------------------------------ scoring
    def anomaly_score(self, X: Any) -> np.ndarray:
        """The anomaly score a(x): higher means more anomalous; always finite.

        Raises
        ------
        ValueError
            X holds NaN, inf, or a value beyond the float32 range, naming the row and
            column; :class:`UnscorableRowsError` when a row's score would not be finite (an
            input so large that the model's float32 arithmetic overflows on it).
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        scores = np.asarray(self._anomaly_score(X), dtype=np.float64)
        self._check_scores(X, scores)
        return scores

    def _unchecked_anomaly_score(self, X: Any) -> np.ndarray:
        """:meth:`anomaly_score` without its finiteness check, for callers that handle
        non-finite scores row by row (``anoean score --on-error flag``)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return np.asarray(self._anomaly_score(X), dtype=np.float64)

    def _input_scaling(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (shift, scale) the model applies to its input, if it has one."""
        shift, scale = getattr(self, "shift_", None), getattr(self, "scale_", None)
        if shift is None or scale is None:
            return None
        return np.asarray(shift), np.asarray(scale)

    def explain(self, X: Any, *, baseline: Any = None, steps: int = 32) -> np.ndarray:
        """Per-feature attributions of the anomaly score; the neural detectors whose score
        is differentiable (AnoEAN, AnoEANPlus) implement it
        (:meth:`anoean.training.neural.NeuralDetector.explain`)."""
        raise TypeError(
            f"{type(self).__name__} cannot explain its scores; AnoEAN and AnoEANPlus can"
        )

    def explain_unscorable(self, x: np.ndarray) -> str:
        """Why the (validated) row ``x`` gets no finite score: the column with the largest
        value after the model's input scaling, which is what overflows its arithmetic."""
        shift, scale = self._input_scaling() or (None, None)
        return explain_overflow(x, shift, scale, getattr(self, "feature_names_in_", None))

    def _check_scores(
        self, X: np.ndarray, scores: np.ndarray, name: str = "X", index: Any = None
    ) -> None:
        """Raise :class:`UnscorableRowsError` naming the first row of X whose score is not
        finite. ``index`` maps X's rows to the row numbers to report (a part of the data
        the user passed, e.g. the held-out validation rows)."""
        bad = ~np.isfinite(scores)
        if bad.any():
            pos = np.flatnonzero(bad)
            rows = pos if index is None else np.asarray(index)[pos]
            raise UnscorableRowsError(
                f"{name}: row {rows[0]} cannot be scored: {self.explain_unscorable(X[pos[0]])}"
                f" ({rows.size} such row(s) in all)",
                rows,
            )

    @abstractmethod
    def _anomaly_score(self, X: np.ndarray) -> np.ndarray: ...

    def score(self, X: Any, y: Any) -> float:
        """The AUC-PR of :meth:`anomaly_score` on X against ``y`` (1 = anomaly, 0 = normal):
        higher is better, so GridSearchCV and cross_val_score without ``scoring`` select
        the better detector. (The stock ``scoring="average_precision"`` and ``"roc_auc"``
        rank by :meth:`decision_function`, higher for more normal points, and come out
        inverted: use :func:`anoean.metrics.aucpr_scorer` or ``auroc_scorer`` instead.)

        Raises
        ------
        ValueError
            ``y`` is not binary or lacks one of the two classes (each fold of a
            cross-validation needs anomalies: use a ``StratifiedKFold``).
        """
        from anoean.core.metrics import aucpr

        return aucpr(np.asarray(y), self.anomaly_score(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """``-anomaly_score(X)``: scikit-learn's sign, higher for more normal points."""
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative values are predicted anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for predicted normal, -1 for predicted anomaly."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        # y is a binary label (1 = known anomaly): declaring binary classifier-style targets
        # makes scikit-learn's common checks pass {0, 1} labels instead of multiclass ones.
        tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags

    # -------------------------------------------------------------- persistence
    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state as (JSON-able dict, name -> array) pairs."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore fitted state; raise ValueError on any inconsistency."""

    def model_files(self) -> dict[str, bytes]:
        """The files of this fitted model's directory, name -> content, weights first.

        ``config.json`` records the SHA-256 of the weights and of its own content
        (:func:`anoean.core.modelfile.seal`), so :meth:`load` detects any damaged or edited file.
        """
        from safetensors.numpy import save as save_bytes

        check_is_fitted(self)
        state, arrays = self._get_state()
        state = dict(state)
        state["threshold_"] = self.threshold_
        state["threshold_rule_"] = self.threshold_rule_
        state["input_shape_"] = list(self.input_shape_)
        state["n_features_in_"] = int(self.n_features_in_)
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = [str(c) for c in self.feature_names_in_]
        weights = save_bytes({k: np.ascontiguousarray(v) for k, v in arrays.items()})
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": jsonable_params(self.get_params(deep=False)),
            "state": state,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "versions": versions(),
        }
        text = json.dumps(seal(config), indent=2, sort_keys=True)
        return {WEIGHTS_FILE: weights, CONFIG_FILE: text.encode("utf-8")}

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the fitted model to directory ``path`` (JSON + safetensors, no pickle).

        ``path`` must not exist, or be an empty directory, or (with ``overwrite=True``) hold
        an anoean model; anything else raises ``FileExistsError`` before anything is
        written. The files are written into a temporary sibling directory and renamed into
        place (:func:`anoean.core.modelfile.write_model_dir`), so a crash never leaves a
        half-written model, and saving never deletes a file it did not write.
        """
        return write_model_dir(path, self.model_files(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | None = None) -> BaseDetector:
        """Load a model saved by :meth:`save`; raises :class:`ModelFileError` if it is damaged."""
        config, arrays = read_model_dir(path)
        entry = by_class(config["class"])  # the one registry of methods
        klass = None if entry is None else entry.load_class()
        if klass is None:
            raise ModelFileError(f"{path}: unknown model class {config['class']!r}")
        if not issubclass(klass, cls):
            raise ModelFileError(
                f"{path} holds a {config['class']} model, not a {cls.__name__}; use anoean.load"
            )
        params = dict(config["params"])
        if device is not None and "device" in params:
            params["device"] = device
        try:
            est = klass(**params)
            state = config["state"]
            est.threshold_ = float(state["threshold_"])
            est.threshold_rule_ = str(state["threshold_rule_"])
            est.offset_ = -est.threshold_
            est.input_shape_ = tuple(int(s) for s in state["input_shape_"])
            est.n_features_in_ = int(state["n_features_in_"])
            if "feature_names_in_" in state:
                est.feature_names_in_ = np.asarray(state["feature_names_in_"], dtype=object)
            est._set_state(state, arrays)
        except ModelFileError:
            raise
        except Exception as exc:  # any inconsistency in the files: never a crash
            raise ModelFileError(
                f"{Path(path) / CONFIG_FILE}: model file is inconsistent: {exc}"
            ) from exc
        return est


def load(path: str | os.PathLike[str], *, device: str | None = None) -> BaseDetector:
    """Load any anoean detector saved with ``save``."""
    return BaseDetector.load(path, device=device)
