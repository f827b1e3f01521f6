"""The learned anomaly generator: its networks and objective, AnoEAN and AnoEANPlus with it
(``generate_anomalies``), its early-stopping signal, persistence and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anoean import AnoEAN, AnoEANPlus, load
from anoean.core.metrics import aucpr
from anoean.core.modelfile import read_model_dir
from anoean.export import NumpyScorer
from anoean.nn.blocks import build
from anoean.nn.generator import (
    ImageGenerator,
    TableGenerator,
    generator_loss,
    make_generator,
    nearest_normal_margin,
    reference_rows,
)
from anoean.training.neural import CORRUPTION_RATE, corrupted_normals

FAST = {"device": "cpu", "random_state": 0, "latent_dim": 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _subspace(seed: int = 0, n: int = 1200, n_anom: int = 120):
    """Normals on a noisy 3-d subspace of R^10; anomalies pushed off it (never labelled)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 10))
    X = rng.normal(size=(n, 3)) @ A + 0.1 * rng.normal(size=(n, 10))
    Xa = rng.normal(size=(n_anom, 3)) @ A + rng.normal(size=(n_anom, 10))
    return X.astype(np.float32), Xa.astype(np.float32)


# ----------------------------------------------------------------------------- nn.generator
def test_generators_make_rows_and_images_of_the_input_shape():
    g = torch.Generator().manual_seed(0)
    table = build(lambda: make_generator((7,)), g, torch.device("cpu"))
    assert isinstance(table, TableGenerator)
    assert table(torch.randn(5, table.noise_dim)).shape == (5, 7)
    for shape in [(1, 28, 28), (1, 8, 8)]:
        image = build(lambda s=shape: make_generator(s), g, torch.device("cpu"))
        assert isinstance(image, ImageGenerator)
        assert image(torch.randn(5, image.noise_dim)).shape == (5, *shape)


def test_reference_rows_and_the_off_the_data_term():
    g = torch.Generator().manual_seed(0)
    xn = torch.randn(300, 6)
    ref, spacing = reference_rows(xn, g)
    assert ref.shape == (300, 6)
    d = torch.cdist(xn, xn)
    d.fill_diagonal_(float("inf"))
    # the 99th percentile of the nearest-neighbour distances: new normal rows are rarely farther
    assert spacing == pytest.approx(float(torch.quantile(d.min(1).values, 0.99)), rel=1e-3)
    sub, _ = reference_rows(xn, g, max_rows=50)
    assert sub.shape == (50, 6) and bool((sub[:, None] == xn[None]).all(-1).any(1).all())
    assert float(nearest_normal_margin(xn + 100.0, ref, spacing)) == 0.0
    # a generated row on a normal row has distance 0: the full penalty
    assert float(nearest_normal_margin(xn[:5].clone(), ref, spacing)) == pytest.approx(
        1.0, abs=1e-2
    )
    # a wider margin penalises rows the default one lets pass
    near = xn[:5] + 0.3 * spacing
    assert float(nearest_normal_margin(near, ref, 3 * spacing)) > float(
        nearest_normal_margin(near, ref, spacing)
    )


def test_generator_loss_prefers_codes_on_the_fence_and_spread_over_directions():
    torch.manual_seed(0)
    normal_codes = torch.randn(400, 4)
    xn, far_rows = torch.randn(400, 6), torch.full((64, 6), 50.0)
    center, scale = normal_codes.mean(0), normal_codes.std(0)
    radius = float(torch.quantile(((normal_codes - center) / scale).norm(dim=1), 0.99))
    directions = torch.randn(64, 4)
    directions = directions / directions.norm(dim=1, keepdim=True)
    on_fence = center + scale * radius * directions
    inside = center + scale * 0.2 * radius * directions
    one_way = center + scale * radius * directions[:1].expand(64, 4)
    loss = {
        name: float(generator_loss(c, far_rows, normal_codes, xn, 1.0))
        for name, c in [("fence", on_fence), ("inside", inside), ("one_way", one_way)]
    }
    assert loss["fence"] < 0.1
    assert loss["inside"] > loss["fence"] + 1.0  # (log 0.2)^2 = 2.6
    assert loss["one_way"] > loss["fence"] + 0.9  # every direction the same: dispersion 1


# ----------------------------------------------------------------------------- the signal
def test_corrupted_normals_keep_the_columns_values_and_replace_about_half():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6)).astype(np.float32)
    a = corrupted_normals(X, np.random.default_rng(1))
    b = corrupted_normals(X, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == X.dtype and a.shape == X.shape
    for j in range(X.shape[1]):  # every value comes from its own column
        assert np.isin(a[:, j], X[:, j]).all()
    changed = float((a != X).mean())  # a donor may be the row itself: slightly below the rate
    assert CORRUPTION_RATE - 0.05 < changed <= CORRUPTION_RATE + 0.03
    images = rng.random((20, 1, 4, 4)).astype(np.float32)
    assert corrupted_normals(images, np.random.default_rng(0)).shape == images.shape


# ----------------------------------------------------------------------------- AnoEAN
def test_anoean_stays_the_papers_method_by_default_and_auto_needs_no_labels():
    X, Xa = _subspace()
    Xl = np.vstack([X, Xa[:30]])
    y = np.r_[np.zeros(len(X)), np.ones(30)]
    assert AnoEAN().generate_anomalies is False
    paper = AnoEAN(**FAST, max_epochs=3).fit(Xl, y)
    auto = AnoEAN(**FAST, max_epochs=3, generate_anomalies="auto").fit(Xl, y)
    assert not paper.generator_used_ and not auto.generator_used_
    # with labelled anomalies "auto" is the paper's method, draw for draw
    np.testing.assert_array_equal(paper.anomaly_score(X), auto.anomaly_score(X))
    assert "loss_g" not in paper.history_[0]
    unlabelled = AnoEAN(**FAST, max_epochs=2, generate_anomalies="auto").fit(X)
    assert unlabelled.generator_used_ and "loss_g" in unlabelled.history_[0]


def test_generator_trains_and_early_stopping_uses_the_corrupted_normals():
    X, Xa = _subspace()
    det = AnoEAN(**FAST, max_epochs=6, patience=2, generate_anomalies=True).fit(X)
    hist = det.history_
    assert all(np.isfinite(h["loss_g"]) for h in hist)
    scores = [h["val_aucpr"] for h in hist]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    # the kept encoder is the best epoch by that signal (ties: the latest)
    best = max(range(len(scores)), key=lambda i: (scores[i], i))
    assert det.best_epoch_ == hist[best]["epoch"]
    # without the generator there is no signal and every epoch runs
    plain = AnoEAN(**FAST, max_epochs=3).fit(X)
    assert all(h["val_aucpr"] is None for h in plain.history_) and plain.n_epochs_ == 3


def test_generator_finds_anomalies_off_the_normal_subspace():
    """One-class training: the generated rows teach the encoder to send rows off the normal
    subspace out of N(0, I). Without it the encoder is pulled only towards N(0, I)."""
    X, Xa = _subspace()
    Xte = np.vstack([X[1000:], Xa])
    yte = np.r_[np.zeros(200), np.ones(len(Xa))]
    kw = {**FAST, "latent_dim": 16, "max_epochs": 15}
    with_gen = AnoEAN(**kw, generate_anomalies=True).fit(X[:1000])
    without = AnoEAN(**kw).fit(X[:1000])
    # measured: 0.983 with the generator, 0.972 without (seed 0)
    assert aucpr(yte, with_gen.anomaly_score(Xte)) > 0.95
    assert aucpr(yte, with_gen.anomaly_score(Xte)) >= aucpr(yte, without.anomaly_score(Xte))


def test_generator_is_not_saved_and_scoring_needs_no_generator(tmp_path):
    X, _ = _subspace()
    det = AnoEAN(**FAST, max_epochs=2, generate_anomalies=True).fit(X)
    path = det.save(tmp_path / "m")
    _, arrays = read_model_dir(path)
    assert not any("generator" in k for k in arrays)
    back = load(path)
    assert back.generator_used_ and back.generate_anomalies is True
    np.testing.assert_array_equal(back.anomaly_score(X), det.anomaly_score(X))
    np.testing.assert_allclose(NumpyScorer.load(path).score(X), det.anomaly_score(X), rtol=1e-5)


def test_image_generator_trains_the_conv_encoder():
    rng = np.random.default_rng(0)
    imgs = rng.random((240, 1, 8, 8)).astype(np.float32) * 0.2
    imgs[:, :, 2:6, 3:5] += 0.8  # a bar: the normal class
    det = AnoEAN(
        device="cpu", random_state=0, latent_dim=4, encoder="conv", max_epochs=2, batch_size=64
    ).set_params(generate_anomalies=True)
    det.fit(imgs)
    assert det.generator_used_ and "loss_g" in det.history_[-1]
    assert np.isfinite(det.anomaly_score(imgs)).all()


# ----------------------------------------------------------------------------- AnoEANPlus
def test_anoeanplus_auto_keeps_the_better_of_generator_and_plain(tmp_path):
    X, Xa = _subspace()
    kw = {"device": "cpu", "random_state": 0, "max_epochs": 3}
    plus = AnoEANPlus(**kw)
    assert plus.generate_anomalies == "auto"
    plus.fit(X)
    sel = plus.generator_selection_
    assert set(sel) == {"generator", "plain"} and all(0.0 <= v <= 1.0 for v in sel.values())
    assert plus.generator_used_ == (sel["generator"] > sel["plain"])
    forced = {g: AnoEANPlus(**kw, generate_anomalies=g).fit(X) for g in (True, False)}
    assert forced[True].generator_used_ and "loss_g" in forced[True].history_[0]
    assert not forced[False].generator_used_ and forced[False].generator_selection_ == {}
    kept = forced[plus.generator_used_]
    # the kept run is exactly the one fitted with that choice, threshold included
    np.testing.assert_array_equal(plus.anomaly_score(Xa), kept.anomaly_score(Xa))
    assert plus.threshold_ == kept.threshold_

    def losses(h):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in h]

    assert losses(plus.history_) == losses(kept.history_)
    assert not np.array_equal(forced[True].anomaly_score(X), forced[False].anomaly_score(X))
    assert not hasattr(plus, "_pseudo_rows")  # the rows are not kept
    path = plus.save(tmp_path / "m")
    back = load(path)
    assert back.generator_used_ == plus.generator_used_ and back.generator_selection_ == sel
    np.testing.assert_array_equal(back.anomaly_score(Xa), plus.anomaly_score(Xa))
    np.testing.assert_allclose(NumpyScorer.load(path).score(Xa), plus.anomaly_score(Xa), rtol=1e-5)


def test_anoeanplus_generator_beside_labelled_anomalies_and_its_knobs():
    X, Xa = _subspace()
    Xl = np.vstack([X, Xa[:20]])
    y = np.r_[np.zeros(len(X)), np.ones(20)]
    # a fixed fusion weight: the "auto" one's cross-fitting is not what is tested here
    kw = {"device": "cpu", "random_state": 0, "max_epochs": 2, "fusion_weight": 0.5}
    auto = AnoEANPlus(**kw).fit(Xl, y)
    assert not auto.generator_used_ and auto.has_head_
    both = AnoEANPlus(**kw, generate_anomalies=True, generator_weight=0.5).fit(Xl, y)
    assert both.generator_used_ and both.has_head_ and "loss_g" in both.history_[0]
    with pytest.raises(ValueError, match="generator_margin"):
        AnoEANPlus(**kw, generator_margin=-1.0).fit(Xl, y)


def test_anoeanplus_patience_without_labels_stops_on_the_corrupted_normals():
    X, _ = _subspace()
    kw = {"device": "cpu", "random_state": 0, "max_epochs": 6, "generate_anomalies": False}
    det = AnoEANPlus(**kw, patience=2).fit(X)
    scores = [h["val_aucpr"] for h in det.history_]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert (
        det.best_epoch_
        == det.history_[max(range(len(scores)), key=lambda i: (scores[i], i))]["epoch"]
    )
    # without patience no signal is computed: a fixed budget
    plain = AnoEANPlus(**kw).fit(X)
    assert all(h["val_aucpr"] is None for h in plain.history_) and plain.n_epochs_ == 6
