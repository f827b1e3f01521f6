"""The detector contract on bad input: validation pairs, the float32 range, finite scores in
every engine, and the fit-time data warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _cli_helpers import blobs, small_anoean

from anoean.core.datachecks import DataWarning
from anoean.core.gaussian import GaussianScorer, mahalanobis_torch


@pytest.fixture(scope="module")
def det():
    X, y = blobs(300, 30, p=5)
    return small_anoean(X * 0.25, y, max_epochs=1)


def test_x_val_without_y_val_is_refused() -> None:
    X, y = blobs(100, 10, p=3)
    from anoean import AnoEAN

    with pytest.raises(ValueError, match="X_val was given without y_val"):
        AnoEAN(max_epochs=1, device="cpu").fit(X, y, X_val=X[:20])
    with pytest.raises(ValueError, match="y_val was given without X_val"):
        AnoEAN(max_epochs=1, device="cpu").fit(X, y, y_val=y[:20])


def test_value_beyond_float32_is_named_at_fit() -> None:
    from anoean import AnoEAN

    X, y = blobs(100, 10, p=3)
    X = X.astype(np.float64)
    X[2, 1] = 1e300
    with pytest.raises(ValueError, match=r"1e\+300 at row 2, column 1, beyond the float32 range"):
        AnoEAN(max_epochs=1, device="cpu").fit(X, y)
    X[2, 1] = -np.inf  # a real infinity is still called one
    with pytest.raises(ValueError, match=r"inf at row 2, column 1"):
        AnoEAN(max_epochs=1, device="cpu").fit(X, y)


def test_mahalanobis_is_finite_for_every_finite_code() -> None:
    import torch

    rng = np.random.default_rng(0)
    g = GaussianScorer.fit(rng.normal(size=(200, 4)) * 1e-3)  # a tight Gaussian: large W
    huge = np.full((3, 4), np.finfo(np.float32).max, dtype=np.float32)
    huge[1] *= -1
    assert np.isfinite(g.distance(huge)).all()
    mu, w = g.torch_params("cpu")
    d = mahalanobis_torch(torch.from_numpy(huge), mu, w)
    assert d.dtype == torch.float64 and torch.isfinite(d).all()


def test_predict_never_passes_an_unscorable_row_as_normal(det) -> None:
    from anoean.core.validation import UnscorableRowsError

    X = np.zeros((6, 5), dtype=np.float32)
    X[3, 4] = np.finfo(np.float32).max  # finite input, overflows the input scaling
    with pytest.raises(UnscorableRowsError, match=r"row 3 cannot be scored: column 4") as info:
        det.predict(X)
    assert info.value.rows.tolist() == [3]
    with pytest.raises(UnscorableRowsError):
        det.decision_function(X)


def test_numpy_and_onnx_scorers_refuse_or_score_finite(det, tmp_path) -> None:
    from anoean.export import NumpyScorer
    from anoean.serve.engine import load_scorer

    path = det.save(tmp_path / "m")
    sc = NumpyScorer.load(path)
    X = np.zeros((6, 5), dtype=np.float32)
    X[3, 4] = np.finfo(np.float32).max
    with pytest.raises(ValueError, match=r"row 3 cannot be scored: column 4"):
        sc.score(X)
    with pytest.raises(ValueError, match="cannot be scored"):
        sc.score_one(X[3])
    X[3, 4] = 1e30  # large but finite all the way: a finite, very large score
    s = sc.score(X)
    assert np.isfinite(s).all() and s[3] == s.max()
    ort = load_scorer(path, "onnx")
    got = ort(X)
    assert got.dtype == np.float64 and np.isfinite(got).all()
    np.testing.assert_allclose(got, det.anomaly_score(X), rtol=1e-5)


def test_constant_and_squashed_columns_warn_but_fit() -> None:
    from anoean import AnoEAN

    X, y = blobs(200, 20, p=4)
    X[:, 1] = 3.0
    X[11, 2] = 1e9
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        det = AnoEAN(max_epochs=1, device="cpu", random_state=0).fit(X, y)
    msgs = [str(w.message) for w in got if issubclass(w.category, DataWarning)]
    assert any("constant column(s)" in m and "column 1" in m for m in msgs), msgs
    assert any("squashes" in m and "column 2" in m and "1e+09" in m for m in msgs), msgs
    assert np.isfinite(det.anomaly_score(X)).all()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        AnoEAN(max_epochs=1, device="cpu", random_state=0).fit(np.ones((50, 3)))
    assert any("every column" in str(w.message) for w in got)


def test_numpy_scorer_names_a_value_beyond_float32(det, tmp_path) -> None:
    from anoean.export import NumpyScorer

    sc = NumpyScorer.load(det.save(tmp_path / "m"))
    X = np.zeros((3, 5))
    X[1, 2] = 1e300
    for call in (lambda: sc.score(X), lambda: sc.score_one(X[1])):
        with pytest.raises(ValueError, match=r"1e\+300 at row \d, column 2, beyond the float32"):
            call()


def test_sample_weight_is_refused_with_what_to_do_instead() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from anoean.baselines import OCSVM

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    with pytest.raises(TypeError, match=r"does not take sample_weight.*np\.repeat"):
        OCSVM().fit(X, sample_weight=np.ones(60))
    # through a scikit-learn Pipeline too (routed as ocsvm__sample_weight)
    with pytest.raises(TypeError, match="does not take sample_weight"):
        make_pipeline(StandardScaler(), OCSVM()).fit(X, ocsvm__sample_weight=np.ones(60))
    OCSVM().fit(X, sample_weight=None)  # the default is accepted
