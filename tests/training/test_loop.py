"""Divergence in the shared training loop: a NaN or inf loss, validation score or weight
stops training, restores the best epoch so far and warns, or raises when nothing is left."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from anoean import AnoEAN, load
from anoean.baselines import EGBAD
from anoean.models.gan import GANDetector
from anoean.training.loop import (
    EpochBatches,
    TrainingDivergedError,
    TrainingDivergedWarning,
    train_loop,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny nets on a shared machine: one intra-op thread. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _strict_json(history: list[dict[str, Any]]) -> None:
    """The history is valid strict JSON: no NaN or inf anywhere."""
    json.loads(json.dumps(history, allow_nan=False))


# ------------------------------------------------------------------ train_loop on a toy
class _Toy:
    """A one-weight model whose step adds 1 to the weight and returns a scripted loss."""

    def __init__(self, loss_at: Callable[[int, int], float], steps_per_epoch: int = 4) -> None:
        self.lin = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.zero_()
        self.loss_at = loss_at
        self.batches = EpochBatches(
            4 * steps_per_epoch, 0, 4, torch.Generator().manual_seed(0), torch.device("cpu")
        )
        self.steps_per_epoch = steps_per_epoch
        self.calls = 0

    @property
    def weight(self) -> float:
        return float(self.lin.weight.detach())

    def step(self, idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
        epoch, i = divmod(self.calls, self.steps_per_epoch)
        self.calls += 1
        with torch.no_grad():
            self.lin.weight.add_(1.0)  # after epoch e (1-based) the weight is e * steps
        return {"loss": torch.tensor(self.loss_at(epoch + 1, i))}

    def run(self, evaluate: Callable[[], float | None], **kw: Any):
        kw.setdefault("max_epochs", 10)
        kw.setdefault("patience", None)
        return train_loop(
            step=self.step, batches=self.batches, evaluate=evaluate, keep={"m": self.lin}, **kw
        )


def _nan_from(epoch: int, step: int = 1) -> Callable[[int, int], float]:
    """Finite losses, except a NaN at one mid-epoch step of ``epoch`` and every later one."""
    return lambda e, i: math.nan if (e, i) >= (epoch, step) else 1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_loop_stops_on_a_mid_epoch_nonfinite_loss_and_restores_the_best(bad):
    toy = _Toy(lambda e, i: bad if (e, i) == (4, 1) else 1.0)  # later steps are finite again
    scores = iter([0.5, 0.9, 0.7, 0.95, 0.99])  # epoch 2 is the best before the divergence
    with pytest.warns(TrainingDivergedWarning) as rec:
        res = toy.run(lambda: next(scores))
    msg = str(rec[0].message)
    assert "diverged at epoch 4" in msg and f"loss is {bad}" in msg and "restored epoch 2" in msg
    assert res.diverged_epoch == 4 and res.best_epoch == 2 and res.best_score == 0.9
    assert [r["epoch"] for r in res.history] == [1, 2, 3]  # the diverged epoch is left out
    assert toy.weight == 2 * toy.steps_per_epoch  # epoch 2's weight, not epoch 4's
    assert toy.calls == 4 * toy.steps_per_epoch  # no epoch after the divergence
    _strict_json(res.history)


def test_loop_without_scores_restores_the_last_finite_epoch():
    toy = _Toy(_nan_from(4))
    with pytest.warns(TrainingDivergedWarning, match=r"epoch 4 \(loss is nan\).*restored epoch 3"):
        res = toy.run(lambda: None)
    assert res.diverged_epoch == 4 and res.best_epoch == 3 and len(res.history) == 3
    assert toy.weight == 3 * toy.steps_per_epoch
    assert all(r["val_aucpr"] is None for r in res.history)
    _strict_json(res.history)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_loop_treats_a_nonfinite_validation_score_as_divergence(bad):
    toy = _Toy(lambda e, i: 1.0)
    scores = iter([0.5, 0.6, bad, 0.9])
    with pytest.warns(TrainingDivergedWarning, match=rf"epoch 3 \(the validation AUC-PR is {bad}"):
        res = toy.run(lambda: next(scores))
    assert res.diverged_epoch == 3 and res.best_epoch == 2 and len(res.history) == 2
    assert toy.weight == 2 * toy.steps_per_epoch


def test_loop_without_scores_catches_nonfinite_weights_behind_finite_losses():
    """An update can leave NaN weights although the loss it returned was finite; without a
    validation score nothing else would notice until the next epoch."""
    toy = _Toy(lambda e, i: 1.0)
    plain_step = toy.step

    def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
        out = plain_step(idx_n, idx_a)
        if toy.calls == 3 * toy.steps_per_epoch:  # the last step of epoch 3
            with torch.no_grad():
                toy.lin.weight.fill_(math.nan)
        return out

    toy.step = step  # type: ignore[method-assign]
    with pytest.warns(TrainingDivergedWarning, match=r"epoch 3 \(weight m\.weight holds nan"):
        res = toy.run(lambda: None)
    assert res.diverged_epoch == 3 and res.best_epoch == 2 and len(res.history) == 2
    assert toy.weight == 2 * toy.steps_per_epoch


@pytest.mark.parametrize("scored", [True, False])
def test_loop_raises_when_the_first_epoch_diverges(scored):
    toy = _Toy(_nan_from(1))
    with pytest.raises(TrainingDivergedError, match=r"epoch 1 \(loss is nan\).*smaller learning"):
        toy.run(lambda: 0.5 if scored else None, desc="Toy")
    assert issubclass(TrainingDivergedError, ValueError)  # the CLI's one-line errors


def test_loop_snapshots_only_when_needed(monkeypatch):
    """With validation scores only new best epochs are copied; without, every epoch."""
    n_copies = 0
    real = copy.deepcopy

    def counting(obj: Any, memo: Any = None, *args: Any) -> Any:
        nonlocal n_copies
        n_copies += memo is None  # top-level calls only, not deepcopy's own recursion
        return real(obj, memo, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    scores = iter([0.9, 0.5, 0.5, 0.95, 0.5, 0.5])
    res = _Toy(lambda e, i: 1.0).run(lambda: next(scores), max_epochs=6)
    assert res.diverged_epoch is None and res.best_epoch == 4 and n_copies == 2
    n_copies = 0
    res = _Toy(lambda e, i: 1.0).run(lambda: None, max_epochs=6)
    assert res.diverged_epoch is None and res.best_epoch == 6 and n_copies == 6


# ------------------------------------------------------------------ NaN in AnoEAN's data
def _problem(labelled: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(300, 6)), rng.normal(3.0, 1.0, size=(40, 6))])
    y = np.r_[np.zeros(300), np.ones(40)].astype(int)
    if not labelled:
        X, y = X[:300], y[:300]
    return X.astype(np.float32), y


ANOEAN_FAST = dict(latent_dim=3, batch_size=64, patience=None, random_state=0, device="cpu")


class _EpochCounter:
    """Tells a step its 1-based epoch: every epoch passes over every normal row once."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows, self.seen = n_rows, 0

    def __call__(self, idx_n: torch.Tensor) -> int:
        """The epoch of the step about to run on ``idx_n`` (counts its rows as seen)."""
        epoch = self.seen // self.n_rows + 1
        self.seen += int(idx_n.numel())
        return epoch

    @property
    def epoch_done(self) -> bool:
        """Whether the step just counted was the last of its epoch."""
        return self.seen % self.n_rows == 0


def _inject_nan_into_anoean(monkeypatch: pytest.MonkeyPatch, from_epoch: int) -> None:
    """AnoEAN's step, fed a copy of the normal rows that turns to NaN at the second step of
    ``from_epoch``: the encoder's codes, losses and (after the update) weights turn NaN."""
    real_make_step = AnoEAN._make_step

    def _make_step(self, nets, data, groups, generator):  # type: ignore[no-untyped-def]
        Xn = data.Xn.clone()
        real = real_make_step(self, nets, dataclasses.replace(data, Xn=Xn), groups, generator)
        epoch_of = _EpochCounter(int(Xn.shape[0]))
        n_in_epoch = {"epoch": 0, "i": 0}

        def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
            e = epoch_of(idx_n)
            if e != n_in_epoch["epoch"]:
                n_in_epoch.update(epoch=e, i=0)
            n_in_epoch["i"] += 1
            if e == from_epoch and n_in_epoch["i"] == 2:
                Xn.fill_(math.nan)
            return real(idx_n, idx_a)

        return step

    monkeypatch.setattr(AnoEAN, "_make_step", _make_step)


def _assert_restored_and_usable(det: Any, ref: Any, X: np.ndarray, tmp_path: Any) -> None:
    assert det.best_epoch_ <= 3 and det.n_epochs_ == len(det.history_) == 3
    _strict_json(det.history_)
    scores = det.anomaly_score(X)
    assert np.isfinite(scores).all()
    # the kept weights are those of a clean run stopped at epoch 3 (same seed)
    np.testing.assert_array_equal(scores, ref.anomaly_score(X))
    assert det.best_epoch_ == ref.best_epoch_
    path = tmp_path / "model.anoean"
    det.save(path)
    np.testing.assert_array_equal(load(path).anomaly_score(X), scores)


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_anoean_nan_in_epoch_4_restores_the_best_epoch(labelled, monkeypatch, tmp_path):
    X, y = _problem(labelled)
    ref = AnoEAN(max_epochs=3, **ANOEAN_FAST).fit(X, y)
    _inject_nan_into_anoean(monkeypatch, from_epoch=4)
    det = AnoEAN(max_epochs=10, **ANOEAN_FAST)
    with pytest.warns(TrainingDivergedWarning, match=r"AnoEAN: training diverged at epoch 4 \("):
        det.fit(X, y)
    _assert_restored_and_usable(det, ref, X, tmp_path)
    if not labelled:
        assert det.best_epoch_ == 3  # the last finite epoch
        assert all(r["val_aucpr"] is None for r in det.history_)


def test_anoean_nonfinite_weights_after_a_finite_epoch_are_caught(monkeypatch, tmp_path):
    """NaN weights at the end of epoch 3 with finite losses: AnoEAN's validation score is
    then not finite (instead of an error from the Gaussian fit), so epoch 3 is discarded."""
    X, y = _problem(True)
    ref = AnoEAN(max_epochs=2, **ANOEAN_FAST).fit(X, y)
    real_make_step = AnoEAN._make_step

    def _make_step(self, nets, data, groups, generator):  # type: ignore[no-untyped-def]
        real = real_make_step(self, nets, data, groups, generator)
        epoch_of = _EpochCounter(int(data.Xn.shape[0]))

        def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
            e = epoch_of(idx_n)
            out = real(idx_n, idx_a)
            if e == 3 and epoch_of.epoch_done:  # after the last (finite) step of epoch 3
                with torch.no_grad():
                    for p in nets["encoder"].parameters():
                        p.fill_(math.nan)
            return out

        return step

    monkeypatch.setattr(AnoEAN, "_make_step", _make_step)
    det = AnoEAN(max_epochs=10, **ANOEAN_FAST)
    with pytest.warns(TrainingDivergedWarning, match=r"epoch 3 \(the validation AUC-PR is nan"):
        det.fit(X, y)
    assert det.n_epochs_ == 2 and det.best_epoch_ == ref.best_epoch_
    np.testing.assert_array_equal(det.anomaly_score(X), ref.anomaly_score(X))


def test_anoean_nan_in_epoch_1_raises_a_clear_error(monkeypatch):
    X, y = _problem(True)
    _inject_nan_into_anoean(monkeypatch, from_epoch=1)
    with pytest.raises(TrainingDivergedError, match=r"AnoEAN: .*epoch 1 .*smaller learning rate"):
        AnoEAN(max_epochs=10, **ANOEAN_FAST).fit(X, y)


# ------------------------------------------------------------------ NaN in a GAN's data
EGBAD_FAST = dict(latent_dim=4, batch_size=32, lr=1e-4, patience=None, random_state=0)


def _inject_nan_into_gan(monkeypatch: pytest.MonkeyPatch, from_epoch: int) -> None:
    real_make_step = GANDetector._make_step

    def _make_step(self, nets, data, groups, gen):  # type: ignore[no-untyped-def]
        Xn = data.Xn.clone()
        real = real_make_step(self, nets, dataclasses.replace(data, Xn=Xn), groups, gen)
        epoch_of = _EpochCounter(int(Xn.shape[0]))

        def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
            if epoch_of(idx_n) == from_epoch:
                Xn.fill_(math.nan)
            return real(idx_n, idx_a)

        return step

    monkeypatch.setattr(GANDetector, "_make_step", _make_step)


def test_egbad_nan_in_epoch_4_restores_the_best_epoch(monkeypatch, tmp_path):
    X, y = _problem(True)
    ref = EGBAD(max_epochs=3, device="cpu", **EGBAD_FAST).fit(X, y)
    _inject_nan_into_gan(monkeypatch, from_epoch=4)
    det = EGBAD(max_epochs=10, device="cpu", **EGBAD_FAST)
    with pytest.warns(TrainingDivergedWarning, match=r"EGBAD: training diverged at epoch 4 \("):
        det.fit(X, y)
    _assert_restored_and_usable(det, ref, X, tmp_path)


def test_egbad_nan_in_epoch_1_raises_a_clear_error(monkeypatch):
    X, y = _problem(True)
    _inject_nan_into_gan(monkeypatch, from_epoch=1)
    with pytest.raises(TrainingDivergedError, match=r"EGBAD: .*epoch 1 .*smaller learning rate"):
        EGBAD(max_epochs=10, device="cpu", **EGBAD_FAST).fit(X, y)


def test_egbad_nonfinite_validation_scores_stop_training(monkeypatch):
    """NaN weights after the last (finite) step of epoch 3: the validation scores are NaN,
    which counts as divergence at epoch 3 (it used to count as an AUC-PR of 0)."""
    X, y = _problem(True)
    ref = EGBAD(max_epochs=2, device="cpu", **EGBAD_FAST).fit(X, y)
    real_make_step = GANDetector._make_step

    def _make_step(self, nets, data, groups, gen):  # type: ignore[no-untyped-def]
        real = real_make_step(self, nets, data, groups, gen)
        epoch_of = _EpochCounter(int(data.Xn.shape[0]))

        def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
            e = epoch_of(idx_n)
            out = real(idx_n, idx_a)
            if e == 3 and epoch_of.epoch_done:
                with torch.no_grad():
                    for name, net in nets.items():
                        if name != "scaler":
                            for p in net.parameters():
                                p.fill_(math.nan)
            return out

        return step

    monkeypatch.setattr(GANDetector, "_make_step", _make_step)
    det = EGBAD(max_epochs=10, device="cpu", **EGBAD_FAST)
    with pytest.warns(TrainingDivergedWarning, match=r"epoch 3 \(the validation AUC-PR is nan"):
        det.fit(X, y)
    assert det.n_epochs_ == 2 and det.best_epoch_ == ref.best_epoch_
    np.testing.assert_array_equal(det.anomaly_score(X), ref.anomaly_score(X))
