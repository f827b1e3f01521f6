"""scikit-learn's estimator checks on every detector of the registry (few epochs, CPU, fixed
seed), with the one table of checks expected to fail and why."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _baseline_helpers import TINY
from sklearn.utils.estimator_checks import parametrize_with_checks

from anoean.core.registry import METHODS

_Y_BINARY = (
    "passes a multiclass y (e.g. the first feature cast to int); our y is the binary anomaly "
    "label and rejects values outside {0, 1} by design"
)

#: Checks expected to fail for every detector, with the reason. Keep this list short and
#: honest.
EXPECTED_FAILED: dict[str, str] = {
    "check_estimators_dtypes": _Y_BINARY,
    "check_classifier_data_not_an_array": _Y_BINARY,
    "check_fit2d_1feature": _Y_BINARY,
    "check_dtype_object": (
        "expects a TypeError for a dict inside X; we raise a ValueError that names the row, "
        "column and value, as our bad-input contract requires"
    ),
    **dict.fromkeys(
        [
            "check_all_zero_sample_weights_error",
            "check_sample_weight_equivalence_on_dense_data",
            "check_sample_weights_list",
            "check_sample_weights_not_an_array",
            "check_sample_weights_not_overwritten",
            "check_sample_weights_pandas_series",
            "check_sample_weights_shape",
        ],
        "fit refuses sample_weight by design, with a TypeError that says how to fit records "
        "with counts (BaseDetector.fit)",
    ),
    "check_methods_subset_invariance": (
        "scores agree to floating-point precision, but BLAS results can differ in the last "
        "bit with the batch size, and a point lying exactly on the threshold (a quantile of "
        "the validation scores) can then flip its prediction"
    ),
}

#: Per-detector departures from :data:`EXPECTED_FAILED`.
_OWN: dict[str, dict[str, str | None]] = {
    # OCSVM's check data happen to put no point on the threshold
    "OCSVM": {"check_methods_subset_invariance": None},
    "SVM": dict.fromkeys(
        ["check_fit_score_takes_y", "check_outliers_fit_predict", "check_outliers_train"],
        "fits on unlabelled data (y=None); the two-class SVM needs labelled anomalies and "
        "says so with a ValueError",
    ),
}


def expected_failed(est: Any) -> dict[str, str]:
    table: dict[str, str | None] = {**EXPECTED_FAILED, **_OWN.get(type(est).__name__, {})}
    return {k: v for k, v in table.items() if v is not None}


def _estimators() -> list[Any]:
    out = []
    for m in METHODS.values():
        cls = m.load_class()
        if m.name == "anoean":
            params: dict[str, Any] = {"max_epochs": 2, "latent_dim": 2, "device": "cpu"}
        else:
            params = dict(TINY[cls.__name__])
            if m.neural:
                params.update(device="cpu", batch_size=64)  # few steps: the checks fit often
        out.append(cls(random_state=0, **params))
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The nets are tiny: one intra-op thread beats two on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@parametrize_with_checks(_estimators(), expected_failed_checks=expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)
