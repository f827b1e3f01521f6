"""The training loop shared by every neural detector (AnoEAN and the GAN baselines).

A model supplies two callables:

* ``step(idx_normal, idx_anomaly) -> dict[str, Tensor]``: one optimisation step (for a GAN,
  one discriminator update then one generator/encoder update) on the rows given by index
  tensors, returning its scalar losses (detached);
* ``evaluate() -> float | None``: the validation AUC-PR of the current weights, or ``None``
  when the validation set holds no anomalies (AUC-PR is then undefined).

The loop owns everything else, once: epochs (one epoch is one full pass over the normal
training rows), batch drawing, timing, the history, early stopping on validation AUC-PR with
``patience``, keeping and restoring the best weights, and the progress bar.

Batch composition
-----------------
Anomalies are scarce (about 10% in the paper's protocol). Drawing batches from the pooled
data would leave some batches with no anomaly at all, so the anomaly terms of L_D and L_E
would vanish for those steps, and a last partial batch could hold none. Instead each step
takes ``batch_size`` normal rows (a shuffled pass over the normals per epoch) *and* a batch
of anomalies drawn by cycling through a reshuffled permutation of the labelled anomalies.
The anomaly batch size is proportional to their share (so each anomaly is seen about once
per epoch, as in pooled sampling) but never below ``min_anomaly_batch`` (or all of them when
there are fewer), so every step's anomaly term is a mean over a meaningful sample.

Divergence
----------
A NaN or infinite loss, a non-finite validation score, or (when an epoch's weights are kept)
non-finite weights stop training: the weights of that epoch are discarded, the best epoch so
far is restored (the best-scored one, or without validation scores the last finite one), and
a :class:`TrainingDivergedWarning` names the epoch and the cause. The diverged epoch is left
out of the history (which therefore never holds NaN and stays valid JSON) and recorded in
:attr:`TrainResult.diverged_epoch`. When no epoch finished cleanly there is nothing to
restore and :class:`TrainingDivergedError` is raised. Losses are checked on their per-epoch
sums, once per epoch (one device sync): a NaN in any step propagates to the sum.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

logger = logging.getLogger("anoean")


class TrainingDivergedError(ValueError):
    """Training diverged (a non-finite loss, validation score or weights) before any epoch
    finished cleanly, so there are no weights to fall back on. A ``ValueError`` so that the
    command line reports it as a one-line error."""


class TrainingDivergedWarning(RuntimeWarning):
    """Training diverged; the loop stopped and restored the best epoch so far."""


class EpochBatches:
    """Index batches for one epoch: normals in a shuffled pass, anomalies cycled alongside."""

    def __init__(
        self,
        n_normal: int,
        n_anomaly: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
        min_anomaly_batch: int = 16,
    ) -> None:
        self.n_normal, self.n_anomaly = n_normal, n_anomaly
        self.batch_size = min(batch_size, n_normal)
        self.generator, self.device = generator, device
        if n_anomaly:
            prop = math.ceil(self.batch_size * n_anomaly / n_normal)
            self.anomaly_batch = min(n_anomaly, max(prop, min_anomaly_batch))
        else:
            self.anomaly_batch = 0
        self._a_perm = torch.empty(0, dtype=torch.long, device=device)
        self._a_pos = 0

    def __len__(self) -> int:
        return math.ceil(self.n_normal / self.batch_size)

    def _next_anomalies(self) -> torch.Tensor:
        k = self.anomaly_batch
        if k == 0:
            return self._a_perm[:0]
        if self._a_pos + k > self._a_perm.numel():
            # keep the unused tail, then start a new shuffled cycle: every anomaly is used
            # exactly once per cycle
            tail = self._a_perm[self._a_pos :]
            fresh = torch.randperm(self.n_anomaly, generator=self.generator, device=self.device)
            self._a_perm, self._a_pos = torch.cat([tail, fresh]), 0
        out = self._a_perm[self._a_pos : self._a_pos + k]
        self._a_pos += k
        return out

    def _normal_order(self) -> torch.Tensor:
        """This epoch's normal rows, in the order they are batched: a fresh permutation."""
        return torch.randperm(self.n_normal, generator=self.generator, device=self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._normal_order()
        for start in range(0, order.numel(), self.batch_size):
            yield order[start : start + self.batch_size], self._next_anomalies()


class ShardedBatches(EpochBatches):
    """:class:`EpochBatches` over rank ``rank``'s shard of the normal
    rows: a :class:`~torch.utils.data.DistributedSampler` over all ``n_normal`` rows, its
    epoch set every epoch (:meth:`set_epoch`), so that the shards change from epoch to
    epoch and together cover every normal row once (padded to equal shards, so that every
    rank takes the same number of steps); ``ceil(batch_size / world_size)`` normal rows per
    step and rank. The labelled anomalies are all cycled on every rank."""

    def __init__(
        self,
        n_normal: int,
        n_anomaly: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        from torch.utils.data import DistributedSampler

        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(n_normal),  # type: ignore[arg-type]  # a sized sequence is all it needs
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=False,
        )
        per_rank = math.ceil(min(batch_size, n_normal) / world_size)
        super().__init__(len(self.sampler), n_anomaly, per_rank, generator, device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _normal_order(self) -> torch.Tensor:
        """This rank's shard of the normal rows for the epoch, from the sampler."""
        self.sampler.set_epoch(self.epoch)
        return torch.tensor(list(self.sampler), dtype=torch.long, device=self.device)


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float | None = None
    stopped_early: bool = False
    #: the epoch at which training diverged (left out of ``history``), or None
    diverged_epoch: int | None = None
    #: what was not finite at ``diverged_epoch``, e.g. "loss_e is nan"
    diverged_reason: str | None = None


State = dict[str, dict[str, torch.Tensor]]


def _first_value(t: torch.Tensor) -> float:
    """The first non-finite entry of ``t`` (as a float: nan, inf or -inf)."""
    flat = t.detach().reshape(-1)
    return float(flat[~torch.isfinite(flat)][0])


def _non_finite_loss(sums: dict[str, torch.Tensor]) -> str | None:
    """What is wrong with the epoch's loss sums, or None when all are finite (one sync)."""
    if not sums:
        return None
    tensors = {k: torch.as_tensor(v) for k, v in sums.items()}
    if bool(torch.stack([torch.isfinite(v).all() for v in tensors.values()]).all()):
        return None
    for k, v in tensors.items():  # the rare path: name the first bad loss
        if not bool(torch.isfinite(v).all()):
            return f"{k} is {_first_value(v)}"
    return None  # pragma: no cover - unreachable


def _non_finite_weights(state: State) -> str | None:
    """What is wrong with a snapshot of the weights (and buffers), or None (one sync)."""
    named = [
        (f"{k}.{name}", t)
        for k, sd in state.items()
        for name, t in sd.items()
        if t.is_floating_point() or t.is_complex()
    ]
    if not named:
        return None
    if bool(torch.stack([torch.isfinite(t).all().to(named[0][1].device) for _, t in named]).all()):
        return None
    for name, t in named:
        if not bool(torch.isfinite(t).all()):
            return f"weight {name} holds {_first_value(t)}"
    return None  # pragma: no cover - unreachable


def train_loop(
    *,
    step: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    batches: EpochBatches,
    evaluate: Callable[[], float | None],
    keep: dict[str, nn.Module],
    max_epochs: int,
    patience: int | None,
    verbose: int = 0,
    desc: str = "train",
    checkpoint: Any = None,
) -> TrainResult:
    """Run epochs of ``step`` with early stopping on ``evaluate``; restore the best ``keep``.

    ``keep`` names the modules whose weights define "the model" (for AnoEAN, the encoder);
    their state at the best validation epoch is restored at the end. Without a validation
    score (``evaluate`` returns None) the final weights are kept and patience is ignored;
    a copy of each epoch's weights is then kept too, so that divergence (see the module
    docstring) can fall back on the last finite epoch. With validation scores only the
    best epoch's weights are copied, as before.

    ``checkpoint`` (a :class:`anoean.training.checkpoint.RunCheckpoint`) restores the
    state of an interrupted run before the first epoch and saves it after every epoch. In a
    distributed run (:mod:`anoean.training.distributed`) the epoch's losses are averaged over
    the ranks, a sharded ``batches`` is told the epoch, and only rank 0 shows progress.

    Raises :class:`TrainingDivergedError` when the first epoch already diverges; warns with
    :class:`TrainingDivergedWarning` when a later one does.
    """
    from tqdm.auto import tqdm

    from anoean.training import distributed

    result = TrainResult()
    best_state: State | None = None  # weights of the best-scored epoch
    last_state: State | None = None  # weights of the last finite epoch, kept without scores
    last_epoch = 0
    since_best = 0
    first, finished = 1, False
    resumed = checkpoint.load() if checkpoint is not None else None
    if resumed is not None:
        done, st = resumed
        first, finished = done + 1, bool(st["finished"])
        result.history, result.best_epoch = list(st["history"]), int(st["best_epoch"])
        result.best_score = st["best_score"]
        result.stopped_early = bool(st["stopped_early"])
        result.diverged_epoch, result.diverged_reason = st["diverged_epoch"], st["diverged_reason"]
        best_state, last_state = st["best_state"], st["last_state"]
        last_epoch, since_best = int(st["last_epoch"]), int(st["since_best"])
        logger.info("%s: resumed after epoch %d from %s", desc, done, checkpoint.directory)

    def save(epoch: int, done: bool) -> None:
        if checkpoint is None:
            return
        loop = {
            "finished": done,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_score": result.best_score,
            "stopped_early": result.stopped_early,
            "diverged_epoch": result.diverged_epoch,
            "diverged_reason": result.diverged_reason,
            "best_state": best_state,
            "last_state": last_state,
            "last_epoch": last_epoch,
            "since_best": since_best,
        }
        checkpoint.save(epoch, loop)

    bar = tqdm(
        range(first, max_epochs + 1) if not finished else range(0),
        desc=desc,
        disable=not verbose or not distributed.is_main_process(),
        leave=False,
        unit="ep",
        mininterval=0.5,
    )
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            for mod in keep.values():
                mod.train()
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(epoch)
            sums: dict[str, torch.Tensor] = {}
            n_steps = 0
            for idx_n, idx_a in batches:
                losses = step(idx_n, idx_a)
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v
                n_steps += 1
            for mod in keep.values():
                mod.eval()
            sums = distributed.mean_over_ranks(sums)
            # the epoch's losses first: with NaN weights evaluate() may not even be defined
            reason = _non_finite_loss(sums)
            score = None
            if reason is None:
                score = evaluate()
                if score is not None and not math.isfinite(score):
                    reason = f"the validation AUC-PR is {float(score)}"
            # ">=": among equally good epochs keep the latest, i.e. the most trained encoder
            new_best = score is not None and (
                result.best_score is None or score >= result.best_score
            )
            if reason is None and (score is None or new_best):
                # a snapshot is taken only when it will be kept: every epoch without
                # validation scores (the fallback if a later epoch diverges), otherwise
                # only at a new best, as before
                state = {k: copy.deepcopy(m.state_dict()) for k, m in keep.items()}
                reason = _non_finite_weights(state)
                if reason is None and score is None:
                    last_state, last_epoch = state, epoch
                elif reason is None:
                    best_state = state
            if reason is not None:
                _diverged(result, epoch, reason, desc, keep, best_state, last_state, last_epoch)
                save(epoch, True)
                break
            record: dict[str, Any] = {"epoch": epoch}
            record.update({k: float(v) / n_steps for k, v in sums.items()})
            record["val_aucpr"] = None if score is None else float(score)
            record["time_s"] = time.perf_counter() - t0
            result.history.append(record)
            if new_best:
                assert score is not None
                result.best_score, result.best_epoch, since_best = float(score), epoch, 0
            else:
                since_best += 1
            if score is None:
                result.best_epoch = epoch
            if verbose:
                shown = {k: v for k, v in record.items() if k != "time_s" and isinstance(v, float)}
                bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
            logger.debug("%s epoch %d: %s", desc, epoch, record)
            stop = score is not None and patience is not None and since_best >= patience
            result.stopped_early = stop
            save(epoch, stop or epoch == max_epochs)
            if stop:
                break
    finally:
        bar.close()
    if best_state is not None:
        for k, m in keep.items():
            m.load_state_dict(best_state[k])
    return result


def _diverged(
    result: TrainResult,
    epoch: int,
    reason: str,
    desc: str,
    keep: dict[str, nn.Module],
    best_state: State | None,
    last_state: State | None,
    last_epoch: int,
) -> None:
    """Record divergence at ``epoch``; restore the fallback weights and warn, or raise."""
    result.diverged_epoch, result.diverged_reason = epoch, reason
    logger.debug("%s epoch %d diverged: %s", desc, epoch, reason)
    if best_state is None and last_state is None:
        raise TrainingDivergedError(
            f"{desc}: training diverged at epoch {epoch} ({reason}) before any epoch "
            "finished with finite losses and weights, so there is nothing to restore; try a "
            "smaller learning rate (lr)"
        )
    if best_state is not None:
        restored, which = result.best_epoch, "the best so far"
    else:
        assert last_state is not None
        # train_loop loads best_state at the end; without one, load the fallback here
        for k, m in keep.items():
            m.load_state_dict(last_state[k])
        restored, which = last_epoch, "the last finite one (no validation score)"
        result.best_epoch = last_epoch
    warnings.warn(
        f"{desc}: training diverged at epoch {epoch} ({reason}); stopped and restored "
        f"epoch {restored}, {which}. A smaller learning rate (lr) may train further",
        TrainingDivergedWarning,
        stacklevel=3,
    )
