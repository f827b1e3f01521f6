"""AnoEANPlus: its components, its contract, persistence and export parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anoean import AnoEANPlus, load
from anoean.core.metrics import aucpr
from anoean.export import NumpyScorer, export_onnx
from anoean.models.anoean_plus.nets import PlusScorer, trimmed_normals

FAST = {"max_epochs": 3, "n_members": 2, "device": "cpu", "random_state": 0}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(seed: int = 0, n: int = 600, p: int = 8):
    """Normals, a labelled anomaly kind (shifted on features 0-3), the same kind hidden
    among the unlabelled rows, and an unseen kind (shifted on features 4-7), never labelled."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, p))
    seen = rng.normal(size=(40, p))
    seen[:, :4] += 4.0
    unseen = rng.normal(size=(40, p))
    unseen[:, 4:] -= 4.0
    X = np.vstack([normal, seen]).astype(np.float32)
    y = np.r_[np.zeros(n), np.ones(40)]
    y_revealed = y.copy()
    y_revealed[n + 10 :] = 0  # 10 labelled, 30 hidden among the unlabelled rows
    return X, y, y_revealed, unseen.astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    """A model that weighs the distance at 0.75: the setting for data where kinds never
    seen in training matter (the default "auto" leans on the head when the labelled kinds
    are well separated; see test_auto_fusion_weight_*)."""
    torch.set_num_threads(1)
    X, y, y_rev, unseen = _data()
    det = AnoEANPlus(**{**FAST, "max_epochs": 10}, fusion_weight=0.75).fit(X, y_rev)
    return det, X, y, unseen


def test_auto_fusion_weight_is_the_cross_fitted_best():
    X, y, y_rev, _ = _data()
    det = AnoEANPlus(**{**FAST, "max_epochs": 10}).fit(X, y_rev)
    scores = det.fusion_scores_
    keys = {f"head_trim={t},w={w}" for t in ("0", "0.1") for w in ("0.25", "0.5", "0.75", "1")}
    assert set(scores) == keys
    best = max(scores.values())
    chosen = f"head_trim={det.head_trim_:g},w={det.fusion_weight_:g}"
    assert scores[chosen] == best
    assert float(det.scorer_.weight) == det.fusion_weight_
    # the head separates the labelled kind: the distance alone ranks it worse
    assert scores[f"head_trim={det.head_trim_:g},w=1"] < best
    # min_fusion_weight bounds the choice
    bounded = AnoEANPlus(**{**FAST, "max_epochs": 10}, min_fusion_weight=0.75).fit(X, y_rev)
    assert {k.split(",")[1] for k in bounded.fusion_scores_} == {"w=0.75", "w=1"}
    assert bounded.fusion_weight_ >= 0.75


def test_few_labels_use_the_default_weight():
    X, _, y_rev, _ = _data()
    y_few = y_rev.copy()
    y_few[np.flatnonzero(y_rev == 1)[5:]] = 0  # 5 labelled anomalies: too few to choose
    det = AnoEANPlus(**FAST).fit(X, y_few)
    assert det.fusion_weight_ == 0.5 and det.fusion_scores_ == {}


def test_trimmed_normals_drops_the_farthest_share():
    codes = torch.tensor([[0.0], [5.0], [1.0], [-3.0], [0.5], [2.0], [0.25], [0.75], [4.0], [1.5]])
    kept = trimmed_normals(codes, 0.2)  # floor(0.2 * 10) = 2 dropped: 5.0 and 4.0
    assert sorted(kept[:, 0].tolist()) == [-3.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    assert trimmed_normals(codes, 0.0) is codes
    assert trimmed_normals(codes, 0.05).shape[0] == 10  # floor(0.5) = 0: nothing dropped


def test_scores_seen_hidden_and_unseen_anomalies_above_normals(fitted):
    det, X, y, unseen = fitted
    s = det.anomaly_score(X)
    assert s.dtype == np.float64
    assert aucpr(y, s) > 0.9
    # the hidden anomalies (labelled 0 in training) are still found
    hidden = np.arange(610, 640)
    assert np.median(s[hidden]) > np.quantile(s[y == 0], 0.95)
    # a kind never seen in training: the distance part of the fused score
    s_unseen = det.anomaly_score(unseen)
    both = np.r_[s[y == 0], s_unseen]
    truth = np.r_[np.zeros(int((y == 0).sum())), np.ones(len(unseen))]
    assert aucpr(truth, both) > 0.8
    assert det.has_head_
    assert (det.predict(unseen) == -1).mean() > 0.5  # scikit-learn: -1 is an outlier


def test_labelled_anomalies_are_never_held_out():
    X, _, y_rev, _ = _data()
    det = AnoEANPlus(**FAST)
    det.input_shape_ = (X.shape[1],)
    data = det._split_data(X, y_rev, None, None, np.random.default_rng(0))
    assert int(data.y.sum()) == int(y_rev.sum())  # every labelled anomaly trains
    assert not data.y_val.any()
    n_normal = int((y_rev == 0).sum())
    assert data.X_val.shape[0] == pytest.approx(0.2 * n_normal, abs=1)


def test_without_labels_the_score_is_the_mean_normalised_distance():
    X, _, _, _ = _data()
    det = AnoEANPlus(**FAST).fit(X)
    assert not det.has_head_ and det.scorer_.head is None
    x = torch.from_numpy(X[:50])
    with torch.no_grad():
        u = det.scorer_.normalised(det.scorer_.distances(det.scorer_.codes(x))).mean(1)
    np.testing.assert_allclose(det.anomaly_score(X[:50]), u.numpy(), rtol=1e-12)
    # the normalisation: the held-out normals' log(1 + distance) has median 0
    assert abs(float(np.median(det.anomaly_score(X)))) < 0.5


def test_fusion_weight_one_trains_no_head():
    X, _, y_rev, _ = _data()
    det = AnoEANPlus(**FAST, fusion_weight=1.0).fit(X, y_rev)
    assert not det.has_head_


def test_same_seed_same_scores_other_seed_other_scores():
    X, _, y_rev, _ = _data()
    a = AnoEANPlus(**FAST).fit(X, y_rev).anomaly_score(X)
    b = AnoEANPlus(**FAST).fit(X, y_rev).anomaly_score(X)
    c = AnoEANPlus(**{**FAST, "random_state": 1}).fit(X, y_rev).anomaly_score(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_head_inputs_are_checked_and_recorded():
    X, _, y_rev, _ = _data()
    with pytest.raises(ValueError, match="'pixels'.*unknown"):
        AnoEANPlus(**FAST, head_inputs="x+pixels").fit(X, y_rev)
    det = AnoEANPlus(**FAST, head_inputs="distances+x").fit(X, y_rev)
    spec = det._architecture()["scorer"]
    assert spec["head_inputs"] == ["x", "distances"]  # in the scorer's fixed order
    assert spec["head"]["layers"][0] == X.shape[1] + det.n_members


def test_transform_gives_every_members_code(fitted):
    det, X, _, _ = fitted
    Z = det.transform(X[:7])
    assert Z.shape == (7, det.n_members * det.latent_dim)


@pytest.mark.parametrize("head_inputs", ["x", "x+codes+distances"])
def test_save_load_numpy_and_onnx_agree(tmp_path, head_inputs):
    X, _, y_rev, unseen = _data()
    det = AnoEANPlus(**FAST, head_inputs=head_inputs).fit(X, y_rev)
    Z = np.vstack([X, unseen])
    ref = det.anomaly_score(Z)
    path = det.save(tmp_path / "m")
    back = load(path)
    assert isinstance(back, AnoEANPlus) and back.has_head_
    np.testing.assert_array_equal(back.anomaly_score(Z), ref)
    assert back.threshold_ == det.threshold_
    sc = NumpyScorer.load(path)
    np.testing.assert_allclose(sc.score(Z), ref, rtol=1e-5, atol=1e-5)
    assert sc.score_one(Z[3]) == pytest.approx(ref[3], rel=1e-5, abs=1e-5)
    np.testing.assert_array_equal(sc.predict(Z), sc.score(Z) > det.threshold_)
    ort = pytest.importorskip("onnxruntime")
    onnx_path = export_onnx(path, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(onnx_path))
    out = sess.run(None, {"x": Z.astype(np.float32)})[0]
    assert out.dtype == np.float64 and out.shape == (Z.shape[0],)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_numpy_scorer_refuses_a_non_finite_row_by_name(tmp_path):
    X, _, y_rev, _ = _data()
    path = AnoEANPlus(**FAST).fit(X, y_rev).save(tmp_path / "m")
    sc = NumpyScorer.load(path)
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="row 1, column 2"):
        sc.score(bad)
    huge = X[:2].astype(np.float64)
    huge[0, 5] = 1e300
    with pytest.raises(ValueError, match="beyond the float32 range"):
        sc.score(huge)


def test_a_tampered_architecture_is_refused(tmp_path):
    X, _, y_rev, _ = _data()
    det = AnoEANPlus(**FAST).fit(X, y_rev)
    scorer = PlusScorer(X.shape[1], det.latent_dim, det.n_members + 1, True)
    with pytest.raises(ValueError, match="architecture"):
        # a recorded architecture other than the one the parameters build
        det._set_state(
            {**det._get_state()[0], "architecture": {"scorer": scorer.spec("scorer")}},
            det._state_arrays(),
        )
