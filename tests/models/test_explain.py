"""explain(X): integrated-gradients attributions of the anomaly score. On a synthetic case
where the anomalous feature is known, it is the one with the largest attribution; the
attributions of a row add up to a(x) - a(baseline); models without a gradient refuse."""

from __future__ import annotations

import numpy as np
import pytest

from anoean import AnoEAN, AnoEANPlus
from anoean.baselines import OCSVM


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    p = 6
    Xn = rng.normal(size=(800, p))
    Xa = rng.normal(size=(40, p))
    Xa[:, 1] += 6.0  # the labelled anomalies: feature 1 too large
    X = np.vstack([Xn, Xa]).astype(np.float32)
    y = np.r_[np.zeros(len(Xn)), np.ones(len(Xa))].astype(np.int64)
    T = rng.normal(size=(200, p)).astype(np.float32)
    T[:100, 4] += 7.0  # unseen anomalies: feature 4 too large
    T[100:, 1] -= 7.0  # feature 1, the other way
    return X, y, T


@pytest.fixture(scope="module", params=["anoean", "anoeanplus"])
def fitted(request):
    X, y, T = _problem()
    if request.param == "anoean":
        det = AnoEAN(latent_dim=4, max_epochs=8, random_state=0, device="cpu")
    else:
        det = AnoEANPlus(n_members=2, max_epochs=5, random_state=0, device="cpu")
    return det.fit(X, y), T


def test_the_anomalous_feature_gets_the_largest_attribution(fitted) -> None:
    det, T = fitted
    attr = det.explain(T)
    assert attr.shape == T.shape and np.isfinite(attr).all()
    top = np.abs(attr).argmax(axis=1)
    assert (top[:100] == 4).mean() >= 0.9, np.bincount(top[:100], minlength=6)
    assert (top[100:] == 1).mean() >= 0.9, np.bincount(top[100:], minlength=6)
    assert (attr[np.arange(200), top] > 0).mean() >= 0.9  # it raised the score


def test_attributions_add_up_to_the_score_difference(fitted) -> None:
    det, T = fitted
    base = np.zeros(T.shape[1], dtype=np.float32)
    attr = det.explain(T[:50], baseline=base, steps=128)
    gap = det.anomaly_score(T[:50]) - det.anomaly_score(base[None])[0]
    np.testing.assert_allclose(attr.sum(axis=1), gap, rtol=0.05, atol=0.05 * np.abs(gap).mean())


def test_default_baseline_is_a_normal_point(fitted) -> None:
    det, T = fitted
    centre = det._explain_baseline()
    X, y, _ = _problem()
    assert np.abs(centre).max() < 0.5  # the normals' centre is 0 (the anomalies pull a little)
    assert det.anomaly_score(centre[None])[0] < np.median(det.anomaly_score(X[y == 0]))
    np.testing.assert_allclose(det.explain(centre[None]), 0.0, atol=1e-9)  # x = b: nothing


def test_bad_baseline_and_models_without_a_gradient_are_refused(fitted) -> None:
    det, T = fitted
    with pytest.raises(ValueError, match="baseline has shape"):
        det.explain(T, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="steps must be at least 1"):
        det.explain(T, steps=0)
    X, y, _ = _problem()
    svm = OCSVM().fit(X[y == 0][:300], y[y == 0][:300])
    with pytest.raises(TypeError, match="OCSVM cannot explain its scores"):
        svm.explain(T)
