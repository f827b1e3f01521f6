"""Hyperparameter selection on the validation AUC-PR, with each baseline's search grid.

The paper selects every model's hyperparameters on the validation AUC-PR; this module does
it for the baselines. :data:`GRIDS` holds one small grid per baseline (keys are the method
names used by :mod:`anoean.experiments`); :func:`select_hyperparameters` fits one model per
configuration and keeps the one with the best validation AUC-PR.

Grids (the reasons are in docs/baselines.md):

* ``ocsvm``: ``nu`` in {0.01, 0.05, 0.1, 0.5} x ``gamma`` in {"scale", 0.01, 0.1, 1}: how
  many training normals may fall outside, and the kernel width (on standardised tables
  "scale" is 1 / p);
* ``svm``: ``C`` in {0.1, 1, 10, 100} x ``gamma`` as above;
* ``anogan``, ``egbad``, ``alad``: the Adam learning rate in {1e-5, 1e-4, 1e-3}. The
  originals' architectures, batch sizes and latent sizes are kept; their learning rate
  (1e-5) is the smallest value of the grid. It is the setting that most changes what a
  fixed epoch budget achieves, and early stopping already chooses the number of epochs.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anoean.core.detector import BaseDetector
from anoean.core.metrics import aucpr
from anoean.core.registry import METHODS
from anoean.core.validation import validate_labels

logger = logging.getLogger("anoean")

#: baseline name -> parameter -> values tried (the registry's grids, AnoEAN's left out)
GRIDS: dict[str, dict[str, list[Any]]] = {
    name: {k: list(v) for k, v in m.grid.items()}
    for name, m in METHODS.items()
    if name not in ("anoean", "anoeanplus")
}


def grid_configs(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid`` (keys in sorted order, values in the given order)."""
    keys = sorted(grid)
    for k in keys:
        if isinstance(grid[k], (str, bytes)) or len(grid[k]) == 0:
            raise ValueError(f"grid[{k!r}] must be a non-empty list of values; got {grid[k]!r}")
    return [
        dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))
    ]


@dataclass
class SearchResult:
    """Outcome of :func:`select_hyperparameters`.

    ``results`` has one entry per configuration, in grid order: ``params``, ``val_aucpr`` and
    ``fit_time_s``.
    """

    best_estimator: BaseDetector
    best_params: dict[str, Any]
    best_score: float
    results: list[dict[str, Any]] = field(default_factory=list)


def select_hyperparameters(
    estimator_cls: type[BaseDetector],
    grid: Mapping[str, Sequence[Any]],
    X: Any,
    y: Any,
    X_val: Any,
    y_val: Any,
    *,
    base_params: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Fit ``estimator_cls(**base_params, **config)`` for each grid configuration on
    ``(X, y)`` (with ``X_val, y_val`` as its validation data) and keep the best validation
    AUC-PR. Ties keep the earlier configuration. An estimator with a ``validation_aucpr(X_val,
    y_val)`` method (AnoEAN) is compared on it; the others on the AUC-PR of
    ``anomaly_score(X_val)``.

    Parameters
    ----------
    estimator_cls : a detector class (e.g. :class:`~anoean.baselines.OCSVM`)
    grid : mapping of parameter name to the values to try (e.g. ``GRIDS["ocsvm"]``)
    X, y : training data and labels (1 = labelled anomaly)
    X_val, y_val : validation data; ``y_val`` must hold both normals and anomalies
    base_params : parameters fixed for every configuration (seed, device, epochs, ...)

    Raises
    ------
    ValueError
        If ``y_val`` lacks either class (AUC-PR is then undefined), or a grid parameter is
        also fixed in ``base_params``. A configuration that fails to fit raises; nothing is
        skipped silently.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean.baselines import OCSVM
    >>> rng = np.random.default_rng(0)
    >>> X, X_val = rng.normal(size=(200, 4)), rng.normal(size=(60, 4))
    >>> X_val[:10] += 5
    >>> y_val = np.r_[np.ones(10), np.zeros(50)]
    >>> res = select_hyperparameters(OCSVM, {"nu": [0.05, 0.5]}, X, None, X_val, y_val)
    >>> len(res.results), res.best_score > 0.9
    (2, True)
    """
    base = dict(base_params or {})
    overlap = sorted(set(base) & set(grid))
    if overlap:
        raise ValueError(f"parameters {overlap} are both fixed in base_params and searched in grid")
    y_val_arr = validate_labels(y_val, len(y_val) if y_val is not None else 0, "y_val")
    if not ((y_val_arr == 0).any() and (y_val_arr == 1).any()):
        raise ValueError("y_val must hold normals (0) and anomalies (1): AUC-PR needs both")
    from anoean.models.kernel.base import gram_cache

    best_score, best_i, best_est = -np.inf, -1, None
    results: list[dict[str, Any]] = []
    # kernel baselines share one squared-distance matrix across the grid
    with gram_cache():
        for i, cfg in enumerate(grid_configs(grid)):
            t0 = time.perf_counter()
            est = estimator_cls(**base, **cfg).fit(X, y, X_val=X_val, y_val=y_val)
            own_rule = getattr(est, "validation_aucpr", None)  # AnoEAN's selection criterion
            if callable(own_rule):
                score = float(own_rule(X_val, y_val_arr))
            else:
                score = aucpr(y_val_arr, np.asarray(est.anomaly_score(X_val)))
            elapsed = time.perf_counter() - t0
            results.append({"params": cfg, "val_aucpr": score, "fit_time_s": elapsed})
            logger.info("%s %s: validation AUC-PR %.4f", estimator_cls.__name__, cfg, score)
            if score > best_score:  # only the best model so far is kept in memory
                best_score, best_i, best_est = score, i, est
    assert best_est is not None
    return SearchResult(
        best_estimator=best_est,
        best_params=dict(results[best_i]["params"]),
        best_score=float(best_score),
        results=results,
    )
