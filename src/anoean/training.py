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
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

logger = logging.getLogger("anoean")


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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(self.n_normal, generator=self.generator, device=self.device)
        for start in range(0, self.n_normal, self.batch_size):
            yield perm[start : start + self.batch_size], self._next_anomalies()


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float | None = None
    stopped_early: bool = False


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
) -> TrainResult:
    """Run epochs of ``step`` with early stopping on ``evaluate``; restore the best ``keep``.

    ``keep`` names the modules whose weights define "the model" (for AnoEAN, the encoder);
    their state at the best validation epoch is restored at the end. Without a validation
    score (``evaluate`` returns None) the final weights are kept and patience is ignored.
    """
    from tqdm.auto import tqdm

    result = TrainResult()
    best_state: dict[str, dict[str, torch.Tensor]] | None = None
    since_best = 0
    bar = tqdm(
        range(1, max_epochs + 1),
        desc=desc,
        disable=not verbose,
        leave=False,
        unit="ep",
        mininterval=0.5,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        for mod in keep.values():
            mod.train()
        sums: dict[str, torch.Tensor] = {}
        n_steps = 0
        for idx_n, idx_a in batches:
            losses = step(idx_n, idx_a)
            for k, v in losses.items():
                sums[k] = sums[k] + v if k in sums else v
            n_steps += 1
        for mod in keep.values():
            mod.eval()
        score = evaluate()
        record: dict[str, Any] = {"epoch": epoch}
        record.update({k: float(v) / n_steps for k, v in sums.items()})
        record["val_aucpr"] = None if score is None else float(score)
        record["time_s"] = time.perf_counter() - t0
        result.history.append(record)
        # ">=": among equally good epochs keep the latest, i.e. the most trained encoder
        if score is not None and (result.best_score is None or score >= result.best_score):
            result.best_score, result.best_epoch, since_best = float(score), epoch, 0
            best_state = {k: copy.deepcopy(m.state_dict()) for k, m in keep.items()}
        else:
            since_best += 1
        if score is None:
            result.best_epoch = epoch
        if verbose:
            shown = {k: v for k, v in record.items() if k != "time_s" and isinstance(v, float)}
            bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        logger.debug("%s epoch %d: %s", desc, epoch, record)
        if score is not None and patience is not None and since_best >= patience:
            result.stopped_early = True
            break
    bar.close()
    if best_state is not None:
        for k, m in keep.items():
            m.load_state_dict(best_state[k])
    return result
