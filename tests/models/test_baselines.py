"""The paper's baselines: detection on synthetic tables and small images, determinism,
persistence, bad input, faithfulness details and scikit-learn's estimator checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _baseline_helpers import FAST_IMAGE, FAST_TABULAR, TINY, image_problem, tabular_problem

import anoean
from anoean import baselines
from anoean.baselines import ALAD, EGBAD, OCSVM, SVM, AnoGAN
from anoean.core.metrics import aucpr
from anoean.core.modelfile import ModelFileError
from anoean.experiments.search import GRIDS, grid_configs, select_hyperparameters

NAMES = ["OCSVM", "SVM", "AnoGAN", "EGBAD", "ALAD"]
GANS = ["AnoGAN", "EGBAD", "ALAD"]


def make(name: str, **params: Any) -> Any:
    cls = getattr(baselines, name)
    if name in GANS:
        params.setdefault("device", "cpu")
    params.setdefault("random_state", 0)
    return cls(**params)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These nets are tiny: one intra-op thread is faster than two on a shared 2-core
    machine, where a second thread mostly waits for a busy core. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ fitted once per module
_CACHE: dict[tuple[str, str], Any] = {}


@pytest.fixture(scope="module")
def tab():
    return tabular_problem()


@pytest.fixture(scope="module")
def img():
    return image_problem()


def _fitted(kind: str, name: str, prob: Any) -> Any:
    key = (kind, name)
    if key not in _CACHE:
        settings = FAST_TABULAR if kind == "tab" else FAST_IMAGE
        det = make(name, **settings[name])
        _CACHE[key] = det.fit(prob.X_train, prob.y_train, X_val=prob.X_val, y_val=prob.y_val)
    return _CACHE[key]


# ------------------------------------------------------------------------------ detection
@pytest.mark.parametrize("name", NAMES)
def test_beats_chance_on_tables(name, tab):
    det = _fitted("tab", name, tab)
    score = aucpr(tab.y_test, det.anomaly_score(tab.X_test))
    assert score >= 2 * tab.test_anomaly_rate, (name, score, tab.test_anomaly_rate)


@pytest.mark.parametrize("name", NAMES)
def test_beats_chance_on_images(name, img):
    det = _fitted("img", name, img)
    assert det.input_shape_ == (1, 8, 8)
    score = aucpr(img.y_test, det.anomaly_score(img.X_test))
    assert score >= 2 * img.test_anomaly_rate, (name, score, img.test_anomaly_rate)
    # (n, H, W) is the same data as (n, 1, H, W)
    np.testing.assert_array_equal(
        det.anomaly_score(img.X_test[:5, 0]), det.anomaly_score(img.X_test[:5])
    )


@pytest.mark.parametrize("name", GANS)
def test_early_stopping_keeps_the_best_epoch(name, tab):
    det = _fitted("tab", name, tab)
    val = [h["val_aucpr"] for h in det.history_]
    best = max(val)
    assert det.best_epoch_ == max(i + 1 for i, v in enumerate(val) if v == best)
    # the kept weights are the best epoch's: re-scoring validation reproduces its AUC-PR
    assert aucpr(tab.y_val, det.anomaly_score(tab.X_val)) == pytest.approx(best, abs=1e-6)


def test_alad_spectral_norm_only_in_conv_nets(tab, img):
    def has_sn(module: torch.nn.Module) -> bool:
        return any(hasattr(m, "parametrizations") for m in module.modules())

    conv, mlp = _fitted("img", "ALAD", img), _fitted("tab", "ALAD", tab)
    for net in ("encoder", "d_xz", "d_xx", "d_zz"):
        assert has_sn(conv.nets_[net]), net
        assert not has_sn(mlp.nets_[net]), net
    assert not has_sn(conv.nets_["generator"])


# ---------------------------------------------------------------------- AnoGAN's search
def test_anogan_search_is_batch_invariant_and_lowers_the_loss(tab):
    det = _fitted("tab", "AnoGAN", tab)
    X = tab.X_test[::10]
    full = det.anomaly_score(X)
    old = det.search_batch_size
    try:
        det.set_params(search_batch_size=3)
        small_batches = det.anomaly_score(X)
        single = np.array([det.anomaly_score(X[i : i + 1])[0] for i in range(4)])
        det.set_params(n_search_iter=0)
        start = det.anomaly_score(X)
    finally:
        det.set_params(search_batch_size=old, n_search_iter=FAST_TABULAR["AnoGAN"]["n_search_iter"])
    # each row's z follows its own trajectory whatever the rows searched with it
    np.testing.assert_allclose(small_batches, full, rtol=1e-4)
    np.testing.assert_allclose(single, full[:4], rtol=1e-4)
    # the search lowers the residual + feature loss from the common start point
    assert (full < start).mean() > 0.9
    assert full.mean() < 0.9 * start.mean()


def test_anogan_val_search_iter_only_shortens_the_early_stopping_check(tab, monkeypatch):
    from anoean.baselines import AnoGAN
    from anoean.models.anogan import AnoGAN as _Impl

    X, y = tab.X_train[::4], tab.y_train[::4]
    Xv, yv = tab.X_val[::4], tab.y_val[::4]
    params = {**FAST_TABULAR["AnoGAN"], "max_epochs": 3, "patience": None, "random_state": 0}
    steps: list[int] = []
    real_search = _Impl._search

    def spy(self, x, n_iter):
        steps.append(n_iter)
        return real_search(self, x, n_iter)

    monkeypatch.setattr(_Impl, "_search", spy)
    short = AnoGAN(**params, val_search_iter=7).fit(X, y, X_val=Xv, y_val=yv)
    # one short search per epoch on the validation set, then the full one for the threshold
    assert steps == [7, 7, 7, params["n_search_iter"]]
    steps.clear()
    short.anomaly_score(tab.X_test[:5])
    assert steps == [params["n_search_iter"]]

    steps.clear()
    same = AnoGAN(**params, val_search_iter=params["n_search_iter"]).fit(X, y, X_val=Xv, y_val=yv)
    default = AnoGAN(**params).fit(X, y, X_val=Xv, y_val=yv)
    # None means "as n_search_iter": bit-identical history and scores
    assert [h["val_aucpr"] for h in same.history_] == [h["val_aucpr"] for h in default.history_]
    np.testing.assert_array_equal(
        same.anomaly_score(tab.X_test[:50]), default.anomaly_score(tab.X_test[:50])
    )
    # the short check is a different (cheaper) signal than the full search
    assert [h["val_aucpr"] for h in short.history_] != [h["val_aucpr"] for h in default.history_]


# ------------------------------------------------------------------------- determinism
def _small(tab: Any) -> tuple[np.ndarray, np.ndarray]:
    keep = np.r_[np.arange(150), np.arange(600, 615)]
    return tab.X_train[keep], tab.y_train[keep]


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed_and_global_rng_untouched(name, tab):
    X, y = _small(tab)
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    a = make(name, random_state=3, **TINY[name]).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    b = make(name, random_state=3, **TINY[name]).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    np.testing.assert_array_equal(a.anomaly_score(tab.X_test), b.anomaly_score(tab.X_test))
    assert a.threshold_ == b.threshold_
    if name in GANS:  # the seed drives initialisation, batches, prior samples and dropout
        c = make(name, random_state=4, **TINY[name]).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
        assert not np.array_equal(a.anomaly_score(tab.X_test), c.anomaly_score(tab.X_test))


@pytest.mark.parametrize("name", ["OCSVM", *GANS])
def test_unsupervised_baselines_ignore_labelled_anomalies(name, tab):
    X, y = _small(tab)
    with_anomalies = make(name, **TINY[name]).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    normals_only = make(name, **TINY[name]).fit(X[y == 0], X_val=tab.X_val, y_val=tab.y_val)
    np.testing.assert_array_equal(
        with_anomalies.anomaly_score(tab.X_test), normals_only.anomaly_score(tab.X_test)
    )


def test_svm_uses_the_labelled_anomalies(tab):
    X, y = _small(tab)
    with pytest.raises(ValueError, match="labelled anomalies"):
        SVM().fit(X[y == 0], X_val=tab.X_val, y_val=tab.y_val)
    det = SVM().fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    # positive decision values lie on the anomaly side: most labelled anomalies are there
    assert (det.anomaly_score(X[y == 1]) > 0).mean() > 0.8
    assert (det.anomaly_score(X[y == 0]) < 0).mean() > 0.8


# ------------------------------------------------------------- kernel scoring vs libsvm
def test_kernel_scores_match_scikit_learn(tab):
    from sklearn.svm import SVC, OneClassSVM

    X, y = _small(tab)
    oc = OCSVM(nu=0.2, gamma=0.05).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    sv = SVM(C=3.0, gamma="scale").fit(X, y, X_val=tab.X_val, y_val=tab.y_val)

    def scaled(det: Any, A: np.ndarray) -> np.ndarray:
        return (A.astype(np.float64) - det.shift_) / det.scale_

    ref_oc = OneClassSVM(nu=0.2, gamma=0.05).fit(scaled(oc, X[y == 0]))
    np.testing.assert_allclose(
        -oc.anomaly_score(tab.X_test),
        ref_oc.decision_function(scaled(oc, tab.X_test)),
        rtol=1e-9,
        atol=1e-9,
    )
    Xs = scaled(sv, X)
    ref_sv = SVC(C=3.0, gamma=1.0 / (Xs.shape[1] * Xs.var()), class_weight="balanced").fit(Xs, y)
    np.testing.assert_allclose(
        sv.anomaly_score(tab.X_test),
        ref_sv.decision_function(scaled(sv, tab.X_test)),
        rtol=1e-9,
        atol=1e-9,
    )
    assert sv.gamma_ == pytest.approx(1.0 / (Xs.shape[1] * Xs.var()))


def test_kernel_fit_paths_agree_and_grid_search_shares_distances(tab, monkeypatch):
    from anoean.experiments.search import select_hyperparameters
    from anoean.models.kernel import base as _kernel

    X, y = _small(tab)
    gram = OCSVM(nu=0.2, gamma=0.05).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    monkeypatch.setattr(_kernel, "MAX_GRAM_ROWS", 0)  # above the limit: libsvm's own kernel
    direct = OCSVM(nu=0.2, gamma=0.05).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    np.testing.assert_array_equal(gram.support_vectors_, direct.support_vectors_)
    np.testing.assert_allclose(
        gram.anomaly_score(tab.X_test), direct.anomaly_score(tab.X_test), rtol=1e-9, atol=1e-9
    )
    monkeypatch.undo()

    calls: list[int] = []
    real = _kernel.squared_distances

    def counting(A):
        hit = _kernel._SQ_DIST_CACHE is not None and len(_kernel._SQ_DIST_CACHE) > 0
        calls.append(int(not hit))
        return real(A)

    monkeypatch.setattr(_kernel, "squared_distances", counting)
    grid = {"C": [1.0, 10.0], "gamma": ["scale", 0.05]}
    res = select_hyperparameters(SVM, grid, X, y, tab.X_val, tab.y_val)
    # four fits, one distance computation; the cache is gone after the search
    assert len(calls) == 4 and sum(calls) == 1
    assert _kernel._SQ_DIST_CACHE is None
    # the cached search selects what separate fits select, with the same scores
    one = SVM(**res.best_params).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)
    np.testing.assert_allclose(
        res.best_estimator.anomaly_score(tab.X_test), one.anomaly_score(tab.X_test), rtol=1e-12
    )


# ------------------------------------------------------------------------- persistence
def _roundtrip(det: Any, X: np.ndarray, path: Path) -> None:
    det.save(path)
    back = anoean.load(path)
    assert type(back) is type(det)
    assert back.get_params() == det.get_params()
    np.testing.assert_array_equal(back.anomaly_score(X), det.anomaly_score(X))
    np.testing.assert_array_equal(back.predict(X), det.predict(X))
    assert back.threshold_ == det.threshold_
    assert "pickle" not in (path / "config.json").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tab, tmp_path):
    _roundtrip(_fitted("tab", name, tab), tab.X_test[:50], tmp_path / name)


@pytest.mark.parametrize("name", GANS)
def test_save_load_round_trip_conv(name, img, tmp_path):
    _roundtrip(_fitted("img", name, img), img.X_test[:20], tmp_path / name)


@pytest.mark.parametrize("name", NAMES)
def test_tampered_weights_are_refused(name, tab, tmp_path):
    path = _fitted("tab", name, tab).save(tmp_path / "m")
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256"):
        anoean.load(path)


@pytest.mark.parametrize("name", NAMES)
def test_consistently_rewritten_but_wrong_weights_are_refused(name, tab, tmp_path):
    """A file whose digest was updated but whose arrays no longer fit the model."""
    import hashlib

    from safetensors.numpy import load_file, save_file

    path = _fitted("tab", name, tab).save(tmp_path / "m")
    arrays = load_file(str(path / "weights.safetensors"))
    key = sorted(k for k, v in arrays.items() if v.ndim == 2)[0]
    arrays[key] = arrays[key][:, :-1].copy()
    save_file(arrays, str(path / "weights.safetensors"))
    config = json.loads((path / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256(
        (path / "weights.safetensors").read_bytes()
    ).hexdigest()
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError):
        anoean.load(path)


# --------------------------------------------------------------------------- bad input
def _bad_fit_inputs(tab: Any) -> dict[str, tuple[Any, Any, str]]:
    X, y = tab.X_train[:80].astype(np.float64), tab.y_train[:80].copy()
    y[-5:] = 1
    nan, inf = X.copy(), X.copy()
    nan[3, 2], inf[4, 1] = np.nan, np.inf
    text = X.astype(object)
    text[2, 5] = "abc"
    y_bad = y.copy()
    y_bad[7] = 2
    return {
        "nan": (nan, y, "NaN at row 3, column 2"),
        "inf": (inf, y, "inf at row 4, column 1"),
        "non-numeric": (text, y, "non-numeric value 'abc' at row 2, column 5"),
        "empty": (X[:0], None, "0 sample"),
        "label-not-0-1": (X, y_bad, "row 7 has 2"),
        "label-length": (X, y[:-1], "79 labels but X has 80 rows"),
    }


@pytest.mark.parametrize(
    "case", ["nan", "inf", "non-numeric", "empty", "label-not-0-1", "label-length"]
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_fit_input_raises_value_error(name, case, tab):
    X, y, match = _bad_fit_inputs(tab)[case]
    with pytest.raises(ValueError, match=match):
        make(name, **TINY[name]).fit(X, y)


@pytest.mark.parametrize("name", NAMES)
def test_bad_scoring_input_raises_value_error(name, tab):
    det = _fitted("tab", name, tab)
    X = tab.X_test[:5].astype(np.float64)
    with pytest.raises(ValueError, match="20 features"):
        det.anomaly_score(X[:, :-1])
    X[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN at row 1, column 3"):
        det.predict(X)
    with pytest.raises(ValueError, match="dim 3"):
        det.anomaly_score(X.reshape(5, 4, 5))


def test_images_need_the_conv_network(img):
    with pytest.raises(ValueError, match="dim 4"):
        EGBAD(device="cpu").fit(img.X_train)
    with pytest.raises(ValueError, match="network='conv' needs images"):
        ALAD(network="conv", device="cpu").fit(img.X_train.reshape(len(img.X_train), -1))


# ----------------------------------------------------------------- hyperparameter search
def test_grids_cover_every_baseline_with_valid_parameters():
    classes = {"ocsvm": OCSVM, "svm": SVM, "anogan": AnoGAN, "egbad": EGBAD, "alad": ALAD}
    assert set(GRIDS) == set(classes)
    for method, grid in GRIDS.items():
        configs = grid_configs(grid)
        assert len(configs) == int(np.prod([len(v) for v in grid.values()]))
        for cfg in configs:
            classes[method](**cfg)._validate_params()  # raises on an invalid value


def test_select_hyperparameters_keeps_the_best_validation_aucpr(tab):
    grid = {"nu": [0.01, 0.5], "gamma": [1.0, "scale"]}
    res = select_hyperparameters(
        OCSVM, grid, tab.X_train, tab.y_train, tab.X_val, tab.y_val, base_params={"random_state": 0}
    )
    assert [r["params"] for r in res.results] == grid_configs(grid)
    scores = [r["val_aucpr"] for r in res.results]
    assert res.best_score == max(scores)
    assert res.best_params == res.results[int(np.argmax(scores))]["params"]
    assert res.best_estimator.get_params()["nu"] == res.best_params["nu"]
    assert aucpr(tab.y_val, res.best_estimator.anomaly_score(tab.X_val)) == res.best_score
    assert len(set(scores)) > 1  # the grid matters on this problem


def test_select_hyperparameters_refuses_an_unusable_validation_set(tab):
    with pytest.raises(ValueError, match="normals \\(0\\) and anomalies \\(1\\)"):
        select_hyperparameters(
            OCSVM, {"nu": [0.1]}, tab.X_train, tab.y_train, tab.X_val, np.zeros(len(tab.X_val))
        )
    with pytest.raises(ValueError, match="both fixed"):
        select_hyperparameters(
            OCSVM,
            {"nu": [0.1]},
            tab.X_train,
            tab.y_train,
            tab.X_val,
            tab.y_val,
            base_params={"nu": 0.2},
        )
