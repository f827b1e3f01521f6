"""AnoEAN on synthetic data: detection, latent geometry, determinism, persistence, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chi2

from anoean import AnoEAN, ModelFileError, load
from anoean.core.metrics import evaluate
from anoean.core.splits import holdout_split
from anoean.training.loop import EpochBatches


def test_detects_seen_and_unseen_anomalies(synthetic, fitted):
    _, _, X_test, y_test, kind = synthetic
    scores = fitted.anomaly_score(X_test)
    assert scores.min() >= 0
    assert evaluate(y_test, scores)["aucpr"] >= 0.95
    # the unseen kind alone is still ranked above normals
    unseen = (kind == 0) | (kind == 3)
    assert evaluate(y_test[unseen], scores[unseen])["auroc"] >= 0.9


def test_normal_codes_near_standard_normal_and_anomalies_far(synthetic, fitted):
    X, y, *_ = synthetic
    d = fitted.latent_dim
    Z = fitted.transform(X[y == 0])
    cov = np.cov(Z, rowvar=False)
    # loose: centred, O(1) spread (the adversarial match is approximate, see the notes)
    assert np.linalg.norm(Z.mean(axis=0)) / np.sqrt(d) < 1.0
    assert 0.05 < np.trace(cov) / d < 2.0
    Za = fitted.transform(X[y == 1])
    limit = chi2.ppf(0.999, d)  # squared radius holding 99.9% of N(0, I)
    assert np.mean((Za**2).sum(axis=1) > limit) >= 0.95
    assert np.mean((Z**2).sum(axis=1) > limit) <= 0.05


def test_history_and_best_epoch(fitted):
    h = fitted.history_
    assert len(h) == fitted.n_epochs_ == 40
    for rec in h:
        assert set(rec) >= {"epoch", "loss_d", "loss_e", "val_aucpr", "time_s"}
        assert np.isfinite(rec["loss_d"]) and np.isfinite(rec["loss_e"]) and rec["time_s"] > 0
    best = max(r["val_aucpr"] for r in h)
    assert h[fitted.best_epoch_ - 1]["val_aucpr"] == best


def test_score_sign_conventions(synthetic, fitted):
    _, _, X_test, *_ = synthetic
    a = fitted.anomaly_score(X_test)
    np.testing.assert_array_equal(fitted.score_samples(X_test), -a)
    np.testing.assert_allclose(fitted.decision_function(X_test), -a - fitted.offset_)
    pred = fitted.predict(X_test)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, a > fitted.threshold_)


def test_target_false_alarm_threshold(synthetic):
    X, y, X_test, y_test, _ = synthetic
    X_val, y_val = X_test, y_test  # an explicit validation set
    m = AnoEAN(max_epochs=3, target_false_alarm=0.1, random_state=1, device="cpu")
    m.fit(X, y, X_val=X_val, y_val=y_val)
    fa = np.mean(m.predict(X_val[y_val == 0]) == -1)
    assert abs(fa - 0.1) < 0.02
    m.set_threshold(X_val[y_val == 0], target_false_alarm=0.02)
    assert abs(np.mean(m.predict(X_val[y_val == 0]) == -1) - 0.02) < 0.01


def test_contamination_threshold(synthetic):
    X, y, *_ = synthetic
    m = AnoEAN(max_epochs=2, contamination=0.05, random_state=0, device="cpu").fit(X, y)
    assert abs(np.mean(m.predict(X) == -1) - 0.05) < 0.005


def test_same_seed_bit_identical_and_other_seed_differs(synthetic):
    X, y, X_test, *_ = synthetic
    kw = dict(max_epochs=3, random_state=7, device="cpu")
    s1 = AnoEAN(**kw).fit(X, y).anomaly_score(X_test)
    s2 = AnoEAN(**kw).fit(X, y).anomaly_score(X_test)
    np.testing.assert_array_equal(s1, s2)
    s3 = AnoEAN(**{**kw, "random_state": 8}).fit(X, y).anomaly_score(X_test)
    assert not np.array_equal(s1, s3)


def test_fit_does_not_touch_global_rngs(synthetic):
    import torch

    X, y, *_ = synthetic
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    AnoEAN(max_epochs=1, random_state=0, device="cpu").fit(X, y)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_no_anomalies_still_trains(synthetic):
    X, y, X_test, y_test, _ = synthetic
    m = AnoEAN(max_epochs=5, random_state=0, device="cpu").fit(X[y == 0])
    assert len(m.history_) == 5  # no validation anomalies: no early stopping
    assert all(r["val_aucpr"] is None for r in m.history_)
    assert evaluate(y_test, m.anomaly_score(X_test))["aucpr"] > 0.5


def test_early_stopping_stops(synthetic):
    X, y, *_ = synthetic
    m = AnoEAN(max_epochs=200, patience=2, random_state=0, device="cpu").fit(X, y)
    assert len(m.history_) < 200


def test_save_load_round_trip(tmp_path, synthetic, fitted):
    _, _, X_test, *_ = synthetic
    path = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["class"] == "AnoEAN" and "torch" in config["versions"]
    for loaded in (AnoEAN.load(path), load(path)):
        np.testing.assert_array_equal(loaded.anomaly_score(X_test), fitted.anomaly_score(X_test))
        np.testing.assert_array_equal(loaded.predict(X_test), fitted.predict(X_test))
        assert loaded.history_ == fitted.history_


def test_load_rejects_tampered_or_damaged_files(tmp_path, fitted):
    path = fitted.save(tmp_path / "m")
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256"):
        AnoEAN.load(path)
    path = fitted.save(tmp_path / "m2")
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        AnoEAN.load(path)
    with pytest.raises(ModelFileError, match="missing"):
        AnoEAN.load(tmp_path / "nowhere")
    # consistent digest but a wrong architecture is caught too
    path = fitted.save(tmp_path / "m3")
    cfg = json.loads((path / "config.json").read_text())
    cfg["params"]["latent_dim"] = 3
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="content_sha256"):  # the file's own digest
        AnoEAN.load(path)
    from anoean.core.modelfile import seal

    (path / "config.json").write_text(json.dumps(seal(cfg)))  # resealed: the shapes are checked
    with pytest.raises(ModelFileError, match="inconsistent"):
        AnoEAN.load(path)


def test_bad_input_messages(synthetic, fitted):
    X, y, *_ = synthetic
    m = AnoEAN(max_epochs=1, random_state=0, device="cpu")
    Xn = X.copy()
    Xn[5, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN at row 5, column 3"):
        m.fit(Xn, y)
    Xi = X.copy()
    Xi[70000 % len(X), 2] = np.inf
    with pytest.raises(ValueError, match=r"inf at row"):
        m.fit(Xi, y)
    with pytest.raises(ValueError, match=r"20 features|shape"):
        fitted.anomaly_score(X[:, :5])
    Xs = X[:4].astype(object)
    Xs[2, 1] = "abc"
    with pytest.raises(ValueError, match=r"non-numeric value 'abc' at row 2, column 1"):
        m.fit(Xs, [0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"(?i)empty|0 sample"):
        m.fit(np.empty((0, 20)))
    with pytest.raises(ValueError, match=r"row 0 has 2"):
        m.fit(X, np.full(len(X), 2))
    with pytest.raises(ValueError, match=r"10 labels but X has"):
        m.fit(X, y[:10])
    with pytest.raises(ValueError, match=r"no normal rows"):
        m.fit(X, np.ones(len(X)))


def test_holdout_split_is_stratified_and_disjoint():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(100), np.ones(10)].astype(int)
    tr, va = holdout_split(y, 0.2, rng)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 110
    assert (y[va] == 0).sum() == 20 and (y[va] == 1).sum() == 2


def test_every_step_sees_anomalies():
    import torch

    b = EpochBatches(1000, 30, 200, torch.Generator().manual_seed(0), torch.device("cpu"))
    batches = list(b)
    assert len(batches) == 5
    seen = torch.cat([a for _, a in batches])
    assert all(len(a) == 16 for _, a in batches)  # floor of 16 anomalies per step
    assert len(torch.unique(seen)) == 30  # cycling covers every anomaly
    assert sorted(torch.cat([n for n, _ in batches]).tolist()) == list(range(1000))


def test_conv_encoder_on_images():
    rng = np.random.default_rng(0)
    normal = rng.random((300, 16, 16), dtype=np.float32) * 0.2
    normal[:, 4:12, 7:9] += 0.8  # a vertical bar
    anom = rng.random((40, 16, 16), dtype=np.float32) * 0.2
    anom[:, 7:9, 4:12] += 0.8  # a horizontal bar
    X = np.concatenate([normal, anom])
    y = np.r_[np.zeros(300), np.ones(40)]
    m = AnoEAN(encoder="conv", latent_dim=4, max_epochs=5, random_state=0, device="cpu").fit(X, y)
    assert m.input_shape_ == (1, 16, 16)
    s = m.anomaly_score(X[:, None])  # (n, 1, H, W) accepted too
    assert evaluate(y, s)["aucpr"] > 0.9
    with pytest.raises(ValueError, match="shape"):
        m.anomaly_score(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="needs images"):
        AnoEAN(encoder="conv").fit(np.zeros((10, 5)))


@pytest.mark.parametrize("kind, shape", [("mlp", (12,)), ("conv", (1, 16, 16))])
def test_step_reuses_codes_bit_identically(kind, shape):
    """make_step encodes each batch once; it must equal the plain alternation bit for bit:
    encode under no_grad and update D, then encode again with grad and update E."""
    import copy

    import torch

    from anoean.models.anoean.detector import Discriminator, Encoder, make_step
    from anoean.nn.blocks import build
    from anoean.nn.losses import anoean_discriminator_loss, anoean_encoder_loss

    d, cpu = 4, torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    enc = build(lambda: Encoder(shape, d, kind), gen, cpu)
    disc = build(lambda: Discriminator(d), gen, cpu)
    enc.scaler.set(np.zeros(shape, np.float32), np.ones(shape, np.float32))  # as fit does
    Xn = torch.rand((90, *shape), generator=gen)
    Xa = torch.rand((20, *shape), generator=gen) + 0.5

    def plain_step(e, D, opt_e, opt_d, g, idx_n, idx_a):
        xn, xa = Xn[idx_n], Xa[idx_a]
        x, n = torch.cat([xn, xa]), xn.shape[0]
        with torch.no_grad():
            codes = e(x)
        z = torch.randn(n, d, generator=g)
        logits = D(torch.cat([z, codes]))
        loss_d = anoean_discriminator_loss(logits[:n], logits[n : 2 * n], logits[2 * n :])
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        logits = D(e(x))
        loss_e = anoean_encoder_loss(logits[:n], logits[n:])
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
        for p in D.parameters():
            p.requires_grad_(True)
        return loss_d.detach(), loss_e.detach()

    e2, D2 = copy.deepcopy(enc), copy.deepcopy(disc)
    start = copy.deepcopy(enc.state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (enc, disc, e2, D2)]
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    step = make_step(enc, disc, opts[0], opts[1], Xn, Xa, g1)
    batches = EpochBatches(90, 20, 30, torch.Generator().manual_seed(2), cpu)
    for _ in range(2):
        for idx_n, idx_a in batches:
            got = step(idx_n, idx_a)
            ref = plain_step(e2, D2, opts[2], opts[3], g2, idx_n, idx_a)
            assert torch.isfinite(got["loss_d"]) and torch.isfinite(got["loss_e"])
            assert torch.equal(got["loss_d"], ref[0]) and torch.equal(got["loss_e"], ref[1])
    for a, b in [(enc, e2), (disc, D2)]:
        # parameters, and every buffer except batch-norm running statistics (the plain form
        # updates them twice per batch, see make_step's docstring)
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            if "running_" not in name and "num_batches_tracked" not in name:
                assert torch.equal(p, q), name
    # training did move the weights (so the comparison above is not vacuous)
    assert not all(torch.equal(v, enc.state_dict()[k]) for k, v in start.items())


def test_conv_save_load_keeps_batch_norm_statistics(tmp_path):
    """The conv encoder's batch-norm running statistics are part of the model file."""
    rng = np.random.default_rng(1)
    X = rng.random((120, 1, 16, 16), dtype=np.float32)
    y = np.r_[np.zeros(100), np.ones(20)]
    X[y == 1] += 0.5
    m = AnoEAN(encoder="conv", latent_dim=3, max_epochs=1, random_state=0, device="cpu").fit(X, y)
    stats = {k: v for k, v in m.encoder_.state_dict().items() if "running_mean" in k}
    assert stats and all(bool(v.abs().sum() > 0) for v in stats.values())  # updated by training
    loaded = load(m.save(tmp_path / "conv"))
    np.testing.assert_array_equal(loaded.anomaly_score(X), m.anomaly_score(X))


def test_in_sample_validation_criterion_is_optimistic_and_cross_fit_is_not():
    from anoean.core.gaussian import GaussianScorer, validation_aucpr
    from anoean.core.metrics import aucpr

    # no signal at all: normals and anomalies from the same N(0, I) in 30 dimensions, with
    # 40 validation normals (the latent-size / normal-count regime of the MNIST runs)
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(60, 30))
    y = np.r_[np.zeros(40), np.ones(20)].astype(int)
    in_sample = validation_aucpr(codes, y, cross_fit=False)
    assert in_sample == aucpr(y, GaussianScorer.fit(codes[y == 0]).distance(codes))
    # the normals' own Gaussian calls them close: a near-perfect score for pure noise
    assert in_sample > 0.9
    # held-out normals look as far as the anomalies: about chance (the anomaly share)
    cross = validation_aucpr(codes, y, cross_fit=True, seed=0)
    assert cross < 0.75
    assert cross == validation_aucpr(codes, y, cross_fit=True, seed=0)  # seeded halves
    with pytest.raises(ValueError, match="at least 4 validation normals"):
        validation_aucpr(codes[37:], y[37:], cross_fit=True)


_VARIANT_KW = dict(max_epochs=4, patience=None, random_state=0, device="cpu")


def _fit_variant_and_default(synthetic, **variant):
    """Fit AnoEAN with an opt-in setting and with the defaults, on the same split; both must
    train identically (the settings only change what the Gaussian and the criterion see)."""
    X, y, *_ = synthetic
    tr, va = holdout_split(y, 0.2, np.random.default_rng(0))
    for key in variant:  # the paper's rule stays the default
        assert getattr(AnoEAN(), key) in {"in_sample", "validation"}
    new = AnoEAN(**_VARIANT_KW, **variant).fit(X[tr], y[tr], X_val=X[va], y_val=y[va])
    ref = AnoEAN(**_VARIANT_KW).fit(X[tr], y[tr], X_val=X[va], y_val=y[va])
    np.testing.assert_array_equal(
        [h["loss_e"] for h in new.history_], [h["loss_e"] for h in ref.history_]
    )
    return new, ref, X, y, tr, va


def test_cross_fit_validation_score_drives_early_stopping_and_selection(synthetic):
    from anoean.experiments.search import select_hyperparameters

    cf, ins, X, y, tr, va = _fit_variant_and_default(synthetic, validation_score="cross_fit")
    kw = _VARIANT_KW
    # same training (the criterion only chooses), different per-epoch criterion
    assert [h["val_aucpr"] for h in cf.history_] != [h["val_aucpr"] for h in ins.history_]
    # the kept epoch's criterion is what validation_aucpr reports for the fitted model
    best = cf.history_[cf.best_epoch_ - 1]["val_aucpr"]
    assert cf.validation_aucpr(X[va], y[va]) == pytest.approx(best, abs=1e-9)
    res = select_hyperparameters(
        AnoEAN,
        {"latent_dim": [4, 8]},
        X[tr],
        y[tr],
        X[va],
        y[va],
        base_params={**kw, "validation_score": "cross_fit"},
    )
    assert res.best_score == pytest.approx(res.best_estimator.validation_aucpr(X[va], y[va]))
    with pytest.raises(ValueError, match="at least 4 normal validation rows"):
        keep = np.r_[np.flatnonzero(y[va] == 0)[:3], np.flatnonzero(y[va] == 1)]
        AnoEAN(**kw, validation_score="cross_fit").fit(
            X[tr], y[tr], X_val=X[va][keep], y_val=y[va][keep]
        )


def test_gaussian_fit_train_estimates_on_training_normals_and_holds_validation_out(synthetic):
    from anoean.core.gaussian import GaussianScorer
    from anoean.core.metrics import aucpr

    m, _, X, y, tr, va = _fit_variant_and_default(synthetic, gaussian_fit="train")
    kw = _VARIANT_KW
    # same training, only the Gaussian's rows differ
    Xtr_n, Xva_n = X[tr][y[tr] == 0], X[va][y[va] == 0]
    expect = GaussianScorer.fit(m.transform(Xtr_n))
    np.testing.assert_allclose(m.gaussian_.mu, expect.mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.gaussian_.cov, expect.cov, rtol=1e-4, atol=1e-6)
    not_val = GaussianScorer.fit(m.transform(Xva_n))
    assert not np.allclose(m.gaussian_.mu, not_val.mu, atol=1e-3)
    # the per-epoch criterion scores the (held-out) validation rows with that Gaussian, and
    # validation_aucpr reports the same number for the kept encoder
    best = m.history_[m.best_epoch_ - 1]["val_aucpr"]
    assert best == pytest.approx(aucpr(y[va], m.anomaly_score(X[va])), abs=1e-6)
    assert m.validation_aucpr(X[va], y[va]) == pytest.approx(best, abs=1e-6)
    # the threshold's false-alarm budget is held-out too: about 5% of validation normals
    assert 0.0 < np.mean(m.anomaly_score(Xva_n) > m.threshold_) <= 0.1
    with pytest.raises(ValueError, match="cross_fit' applies to gaussian_fit='validation'"):
        AnoEAN(**kw, gaussian_fit="train", validation_score="cross_fit").fit(X[tr], y[tr])
    with pytest.raises(ValueError, match="gaussian_fit"):
        AnoEAN(**kw, gaussian_fit="test").fit(X[tr], y[tr])


def test_gaussian_fit_train_survives_save_and_load(synthetic, tmp_path):
    X, y, *_ = synthetic
    m = AnoEAN(max_epochs=2, random_state=0, device="cpu", gaussian_fit="train").fit(X, y)
    loaded = load(m.save(tmp_path / "train_fit"))
    assert loaded.gaussian_fit == "train"
    np.testing.assert_array_equal(loaded.anomaly_score(X), m.anomaly_score(X))
