"""Training checkpoints (anoean.training.checkpoint), in one process: a fit interrupted right
after an epoch's checkpoint resumes and ends with exactly the weights of an uninterrupted
fit; checkpointing itself changes no draw; a checkpoint of other data is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _cli_helpers import blobs

from anoean import AnoEAN, AnoEANPlus
from anoean.training import checkpoint
from anoean.training.checkpoint import CheckpointError, RunCheckpoint


class _Killed(BaseException):
    """Stands for the process being killed: nothing in the fit catches it."""


def _weights(det) -> dict[str, np.ndarray]:
    config, arrays = det._get_state()
    return arrays


def _kill_after(monkeypatch: pytest.MonkeyPatch, run: int, epoch: int) -> None:
    """Make the fit die right after writing epoch ``epoch``'s checkpoint of run ``run``."""
    original = RunCheckpoint.save

    def save(self: RunCheckpoint, e: int, loop: dict) -> None:
        original(self, e, loop)
        if self.directory.name == f"run{run}" and e == epoch:
            raise _Killed

    monkeypatch.setattr(RunCheckpoint, "save", save)


def _assert_same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


@pytest.mark.parametrize(
    "make, labelled",
    [
        (lambda: AnoEAN(latent_dim=4, max_epochs=6, random_state=3, device="cpu"), True),
        # no label, generate_anomalies="auto": two training runs (with and without G)
        (lambda: AnoEANPlus(n_members=2, max_epochs=5, random_state=3, device="cpu"), False),
    ],
    ids=["anoean", "anoeanplus-auto-two-runs"],
)
def test_interrupted_fit_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make, labelled: bool
) -> None:
    X, y = blobs(300, 30, p=5, seed=1)
    if not labelled:
        y = np.zeros_like(y)
    reference = make().fit(X, y)

    with checkpoint.checkpoints(tmp_path / "plain"):
        checkpointed = make().fit(X, y)
    _assert_same_weights(reference, checkpointed)  # writing checkpoints changes no draw

    ckpt = tmp_path / "ckpt"
    last_run = 1 if isinstance(reference, AnoEANPlus) else 0
    with monkeypatch.context() as m:
        _kill_after(m, run=last_run, epoch=3)
        with pytest.raises(_Killed), checkpoint.checkpoints(ckpt):
            make().fit(X, y)
    assert sorted(p.name for p in (ckpt / f"run{last_run}").glob("*.json")) == [
        "epoch-00002.json",
        "epoch-00003.json",
    ]
    with checkpoint.checkpoints(ckpt, resume=True) as saver:
        resumed = make().fit(X, y)
    assert saver._runs == last_run + 1
    _assert_same_weights(reference, resumed)
    assert [h["epoch"] for h in resumed.history_] == [h["epoch"] for h in reference.history_]
    assert resumed.threshold_ == reference.threshold_


def test_early_stopped_run_resumes_as_finished(tmp_path: Path) -> None:
    X, y = blobs(300, 30, p=5, seed=2)
    X[y == 1] -= 2.4  # anomalies near the normals: a noisy validation AUC-PR, which stops
    params = dict(latent_dim=4, max_epochs=40, patience=2, random_state=0, device="cpu")
    with checkpoint.checkpoints(tmp_path):
        first = AnoEAN(**params).fit(X, y)
    assert first.n_epochs_ < 40  # stopped early: the last checkpoint says finished
    with checkpoint.checkpoints(tmp_path, resume=True):
        again = AnoEAN(**params).fit(X, y)
    _assert_same_weights(first, again)
    assert again.n_epochs_ == first.n_epochs_ and again.best_epoch_ == first.best_epoch_


def test_checkpoint_of_other_data_is_refused(tmp_path: Path) -> None:
    X, y = blobs(200, 20, p=4, seed=0)
    params = dict(latent_dim=3, max_epochs=2, random_state=0, device="cpu")
    with checkpoint.checkpoints(tmp_path):
        AnoEAN(**params).fit(X, y)
    X2 = X.copy()
    X2[0, 0] += 1.0
    with pytest.raises(CheckpointError, match="different run.*data_sha256"):
        with checkpoint.checkpoints(tmp_path, resume=True):
            AnoEAN(**params).fit(X2, y)
    with pytest.raises(CheckpointError, match="params"):
        with checkpoint.checkpoints(tmp_path, resume=True):
            AnoEAN(**{**params, "lr": 0.01}).fit(X, y)


def test_damaged_latest_checkpoint_falls_back_and_files_round_trip(tmp_path: Path) -> None:
    state = {
        "a": torch.arange(6.0).reshape(2, 3),
        "opt": {"state": {0: {"step": torch.tensor(3.0)}}, "groups": [{"betas": [0.9, 0.99]}]},
        "x": float("inf"),
        "none": None,
    }
    checkpoint.write_checkpoint(tmp_path, 1, state)
    checkpoint.write_checkpoint(tmp_path, 2, {**state, "a": torch.zeros(2, 3)})
    (tmp_path / "epoch-00002.safetensors").write_bytes(b"damaged")
    epoch, back = checkpoint.read_latest(tmp_path)
    assert epoch == 1
    assert torch.equal(back["a"], state["a"])
    assert back["opt"]["state"][0]["step"] == 3.0 and back["opt"]["groups"][0]["betas"] == [
        0.9,
        0.99,
    ]
    assert back["x"] == float("inf") and back["none"] is None


def test_remove_checkpoints_leaves_other_files(tmp_path: Path) -> None:
    run = tmp_path / "run0"
    checkpoint.write_checkpoint(run, 1, {"a": torch.ones(2)})
    (run / "notes.txt").write_text("mine")
    checkpoint.remove_checkpoints(tmp_path)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    (run / "notes.txt").unlink()
    checkpoint.remove_checkpoints(tmp_path)
    assert not tmp_path.exists()


def test_resume_without_checkpoint_says_it_starts_afresh(tmp_path: Path) -> None:
    X, y = blobs(200, 20, p=4, seed=0)
    params = dict(latent_dim=3, max_epochs=2, random_state=0, device="cpu")
    with pytest.warns(UserWarning, match="no checkpoint in .*training from the first epoch"):
        with checkpoint.checkpoints(tmp_path / "none", resume=True):
            resumed = AnoEAN(**params).fit(X, y)
    _assert_same_weights(resumed, AnoEAN(**params).fit(X, y))
