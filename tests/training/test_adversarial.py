"""The one adversarial step, the fit template and the architecture a model file records.

* :class:`anoean.training.adversarial.AdversarialStep`: D frozen during the group losses and
  restored even when a loss raises; every group's gradient taken before any update; groups
  stepped in order; ``forward`` run once per step;
* the architecture spec: recorded in ``config.json``, checked on load, read by the numpy
  scorer and the ONNX graph; for 0.1.0 files (no spec) derived by the one legacy function,
  and equal to the old key-name reading of those files;
* a new adversarial detector is its networks plus its losses (the sketch of
  docs/architecture.md, run here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anoean import ModelFileError, load
from anoean.core.modelfile import CONFIG_FILE, read_model_dir, seal
from anoean.models.gan import GANDetector
from anoean.nn.gan import MLPDiscriminator, MLPGenerator
from anoean.nn.losses import neg_log_1m_d, neg_log_d
from anoean.training.adversarial import AdversarialStep, Group, adam

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ the step
def _toy(lr: float = 0.1) -> tuple[nn.Linear, nn.Linear, nn.Linear, dict[str, Group], Group]:
    torch.manual_seed(0)
    d, g, e = nn.Linear(2, 1), nn.Linear(2, 2), nn.Linear(2, 2)
    groups = {"g": Group.adam(g.parameters(), lr, (0.5, 0.999))}
    groups["e"] = Group.adam(e.parameters(), lr, (0.5, 0.999))
    return d, g, e, groups, Group.adam(d.parameters(), lr, (0.5, 0.999))


def test_adam_helper() -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = adam([p], 0.01, (0.5, 0.99))
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["betas"] == (0.5, 0.99)


def test_step_restores_requires_grad_when_a_loss_raises() -> None:
    d, g, e, groups, dg = _toy()
    before = [p.detach().clone() for p in d.parameters()]
    x = torch.ones(4, 2)

    def group_losses(batch: Any) -> dict[str, torch.Tensor]:
        assert not any(p.requires_grad for p in d.parameters())  # D is frozen here
        raise RuntimeError("boom")

    step = AdversarialStep(dg, groups, lambda b: (d(x).mean(), {}), group_losses)
    with pytest.raises(RuntimeError, match="boom"):
        step(torch.arange(4), torch.arange(0))
    assert all(p.requires_grad for p in d.parameters())
    # the discriminator step had happened
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True))


def test_step_takes_every_gradient_before_any_update_and_steps_in_order() -> None:
    d, g, e, groups, dg = _toy()
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    order: list[str] = []
    for name, group in groups.items():
        real = group.optimizer.step

        def stepped(*a: Any, _n: str = name, _real: Any = real, **k: Any) -> Any:
            order.append(_n)
            return _real(*a, **k)

        group.optimizer.step = stepped  # type: ignore[method-assign]

    def group_losses(batch: Any) -> dict[str, torch.Tensor]:
        shared = d(e(g(x))).mean()  # both groups' losses go through G and E
        return {"g": shared, "e": -shared}

    # the reference: both gradients from the weights before either update
    g0 = [p.detach().clone() for p in g.parameters()]
    e0 = [p.detach().clone() for p in e.parameters()]
    calls = {"forward": 0}

    def forward(idx_n: torch.Tensor, idx_a: torch.Tensor) -> torch.Tensor:
        calls["forward"] += 1
        return x[idx_n]

    step = AdversarialStep(
        dg, groups, lambda b: (d(b).mean(), {"part": d(b).sum()}), group_losses, forward
    )
    out = step(torch.arange(8), torch.arange(0))
    assert list(out) == ["loss_d", "loss_g", "loss_e", "part"]
    assert all(not v.requires_grad for v in out.values())
    assert order == ["g", "e"] and calls["forward"] == 1

    gr, er = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        for p, v in zip(gr.parameters(), g0, strict=True):
            p.copy_(v)
        for p, v in zip(er.parameters(), e0, strict=True):
            p.copy_(v)
    for p in d.parameters():
        p.requires_grad_(False)
    ref = d(er(gr(x))).mean()
    grads_g = torch.autograd.grad(ref, list(gr.parameters()), retain_graph=True)
    grads_e = torch.autograd.grad(-ref, list(er.parameters()))
    for p, r in zip(g.parameters(), grads_g, strict=True):
        assert torch.equal(p.grad, r)
    for p, r in zip(e.parameters(), grads_e, strict=True):
        assert torch.equal(p.grad, r)


def test_step_needs_a_group() -> None:
    d, _, _, _, dg = _toy()
    with pytest.raises(ValueError, match="at least one"):
        AdversarialStep(dg, {}, lambda b: (d(b).mean(), {}), lambda b: {})


# -------------------------------------------------------- architecture spec
def _anoean(tmp_path: Path, **kw: Any) -> tuple[Any, Path, np.ndarray]:
    from anoean import AnoEAN

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 5)), rng.normal(3, 1, size=(20, 5))]).astype(np.float32)
    y = np.r_[np.zeros(200), np.ones(20)]
    det = AnoEAN(latent_dim=3, max_epochs=2, random_state=0, device="cpu", **kw).fit(X, y)
    return det, det.save(tmp_path / "model"), X


def _edit_config(path: Path, edit: Any) -> None:
    cfg = json.loads((path / CONFIG_FILE).read_text())
    cfg.pop("content_sha256")
    edit(cfg)
    (path / CONFIG_FILE).write_text(json.dumps(seal(cfg)))


def test_anoean_records_its_architecture_and_load_checks_it(tmp_path: Path) -> None:
    det, path, X = _anoean(tmp_path)
    config, arrays = read_model_dir(path)
    arch = config["state"]["architecture"]
    enc = arch["encoder"]
    assert enc["kind"] == "mlp" and enc["layers"] == [5, 128, 64, 32, 3]
    assert enc["activation"] == "leaky_relu" and enc["negative_slope"] == 0.2
    assert arch["discriminator"]["layers"] == [3, 32, 16, 1]
    for name in [*enc["weights"], *enc["biases"], enc["input_scaling"]["shift"]]:
        assert name in arrays
    np.testing.assert_array_equal(load(path).anomaly_score(X), det.anomaly_score(X))

    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    _edit_config(bad, lambda c: c["state"]["architecture"]["encoder"].update(negative_slope=0.3))
    with pytest.raises(ModelFileError, match=r"encoder\.negative_slope=0\.3"):
        load(bad)


def test_numpy_and_onnx_read_the_slope_from_the_spec(tmp_path: Path) -> None:
    from anoean.export import NumpyScorer
    from anoean.serve.onnx import mlp_graph

    _, path, X = _anoean(tmp_path)
    config, arrays = read_model_dir(path)
    assert NumpyScorer.from_arrays(config, arrays).negative_slope == 0.2
    config["state"]["architecture"]["encoder"]["negative_slope"] = 0.05
    sc = NumpyScorer.from_arrays(config, arrays)
    assert sc.negative_slope == 0.05
    (relu,) = [n for n in mlp_graph(sc).graph.node if n.op_type == "LeakyRelu"][:1]
    assert abs(relu.attribute[0].f - 0.05) < 1e-7
    config["state"]["architecture"]["encoder"]["layers"][1] = 99
    with pytest.raises(ModelFileError, match="layer widths"):
        NumpyScorer.from_arrays(config, arrays)


def test_gan_records_its_architecture(tmp_path: Path) -> None:
    from anoean.baselines import ALAD

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    det = ALAD(latent_dim=3, batch_size=32, max_epochs=1, random_state=0, device="cpu").fit(X)
    path = det.save(tmp_path / "alad")
    arch = read_model_dir(path)[0]["state"]["architecture"]
    assert set(arch) == {"scaler", "encoder", "generator", "d_xz", "d_xx", "d_zz"}
    assert arch["encoder"] == [{"linear": [4, 64]}, {"leaky_relu": 0.2}, {"linear": [64, 3]}]
    assert arch["d_zz"]["features"][0] == {"linear": [6, 32]}
    np.testing.assert_array_equal(load(path).anomaly_score(X), det.anomaly_score(X))
    _edit_config(path, lambda c: c["state"]["architecture"]["encoder"][1].update(leaky_relu=0.1))
    with pytest.raises(ModelFileError, match="architecture recorded"):
        load(path)


def _old_key_name_layers(arrays: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """How NumpyScorer read the layers before the spec: by parsing the weights' key names."""
    n = 0
    while f"encoder.body.{2 * n}.weight" in arrays:
        n += 1
    return [
        (arrays[f"encoder.body.{2 * i}.weight"], arrays[f"encoder.body.{2 * i}.bias"])
        for i in range(n)
    ]


@pytest.mark.parametrize("name", ["anoean_mlp", "cli_model"])
def test_v0_1_0_spec_equals_the_old_key_name_path_and_todays_spec(
    name: str, tmp_path: Path
) -> None:
    from anoean.export import NumpyScorer
    from anoean.serve.numpy_scorer import legacy_v0_1_0_encoder_spec

    config, arrays = read_model_dir(FIXTURES / name)
    assert "architecture" not in config["state"]
    sc = NumpyScorer.from_arrays(config, arrays)
    old = _old_key_name_layers(arrays)
    assert len(old) == len(sc._wt) == 4
    for (w, b), wt, bias in zip(old, sc._wt, sc._b, strict=True):
        np.testing.assert_array_equal(wt, w.T)
        np.testing.assert_array_equal(bias, b)
    X = np.random.default_rng(0).normal(size=(50, sc.n_features_in_)).astype(np.float32)
    # today's loader re-saves the 0.1.0 model with the architecture it builds: the same spec
    det = load(FIXTURES / name, device="cpu")
    resaved = det.save(tmp_path / "resaved")
    config2, arrays2 = read_model_dir(resaved)
    assert config2["state"]["architecture"]["encoder"] == legacy_v0_1_0_encoder_spec(config)
    sc2 = NumpyScorer.from_arrays(config2, arrays2)
    np.testing.assert_array_equal(sc2.score(X), sc.score(X))
    np.testing.assert_allclose(sc.score(X), det.anomaly_score(X), rtol=1e-5, atol=1e-5)


def test_v0_1_0_conv_model_is_refused_by_numpy() -> None:
    from anoean.export import NumpyScorer

    with pytest.raises(ModelFileError, match="MLP encoder only"):
        NumpyScorer.load(FIXTURES / "anoean_conv")


def test_registry_decides_what_exports() -> None:
    from anoean.serve.numpy_scorer import exportable_classes, exportable_entry

    assert exportable_classes() == "AnoEAN, AnoEANPlus"
    assert exportable_entry({"class": "AnoEAN"}) is not None
    assert exportable_entry({"class": "AnoEANPlus"}) is not None
    assert exportable_entry({"class": "EGBAD"}) is None
    assert exportable_entry({"class": "Nope"}) is None


def test_dead_code_is_gone() -> None:
    import inspect

    from anoean.nn import blocks

    assert not hasattr(blocks, "ConvDecoder")
    assert list(inspect.signature(blocks.MLP.__init__).parameters) == ["self", "dims"]


# ------------------------------------------- a new detector: nets plus losses
# the sketch of docs/architecture.md, kept in step with it


class SketchGAN(GANDetector):
    """A GAN on normal rows whose anomaly score is -log D(x)."""

    _groups = {"d": ("discriminator",), "g": ("generator",)}

    def _make_nets(self, in_shape: tuple[int, ...], latent_dim: int) -> dict[str, nn.Module]:
        return {
            "generator": MLPGenerator(latent_dim, in_shape[0]),
            "discriminator": MLPDiscriminator(in_shape[0]),
        }

    def _discriminator_loss(self, nets, x, z):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            fake = nets["generator"](z)
        real_logits, _ = nets["discriminator"](x)
        fake_logits, _ = nets["discriminator"](fake)
        return neg_log_d(real_logits) + neg_log_1m_d(fake_logits), {}

    def _generator_losses(self, nets, x, z):  # type: ignore[no-untyped-def]
        fake_logits, _ = nets["discriminator"](nets["generator"](z))
        return {"g": neg_log_d(fake_logits)}

    @torch.no_grad()
    def _score_chunk(self, xs: torch.Tensor) -> torch.Tensor:
        logits, _ = self.nets_["discriminator"](xs)
        return F.softplus(-logits)  # -log D(x)


def test_a_new_detector_is_its_nets_plus_its_losses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.normal(4, 1, size=(20, 4))]).astype(np.float32)
    y = np.r_[np.zeros(200), np.ones(20)]
    det = SketchGAN(lr=1e-3, max_epochs=3, random_state=0, device="cpu").fit(X, y)
    assert det.n_epochs_ == len(det.history_) >= 1
    assert {"loss_d", "loss_g"} <= set(det.history_[0])
    again = SketchGAN(lr=1e-3, max_epochs=3, random_state=0, device="cpu").fit(X, y)
    np.testing.assert_array_equal(again.anomaly_score(X), det.anomaly_score(X))
    path = det.save(tmp_path / "sketch")
    with pytest.raises(ModelFileError, match="unknown model class 'SketchGAN'"):
        load(path)  # not in the one registry of methods yet
    from anoean.core import registry

    entry = registry.register(SketchGAN, arch_param="network")
    try:
        assert registry.method("sketchgan") is entry
        loaded = load(path)
    finally:
        del registry.METHODS["sketchgan"]
    np.testing.assert_array_equal(loaded.anomaly_score(X), det.anomaly_score(X))
    assert read_model_dir(tmp_path / "sketch")[0]["state"]["architecture"]["generator"]
