"""The one adversarial step: a discriminator update, then the generator / encoder updates.

AnoEAN and the three GAN baselines train with the same alternation, written once here as
:class:`AdversarialStep`. A model supplies only its losses:

* ``forward(idx_normal, idx_anomaly) -> batch``: what both losses receive. The GANs hand on
  the (scaled) normal rows; AnoEAN encodes the batch here, once, so that its D step (on the
  detached codes) and its E step (through the codes) share one encoder forward pass;
* ``discriminator_loss(batch) -> (loss, parts)``: the discriminator group's loss and any
  parts worth recording in the history (ALAD's three discriminators);
* ``group_losses(batch) -> {name: loss}``: the loss of each generator / encoder group, with
  the discriminators frozen.

The step owns everything else, in this order:

1. ``forward``; the discriminator loss; ``zero_grad``, ``backward`` and ``step`` of the
   discriminator optimiser;
2. the discriminator parameters are frozen (``requires_grad=False``), so that the group
   losses send no gradient into them, and are restored in a ``finally``, even when a loss
   raises;
3. every group's gradient is taken (``torch.autograd.grad`` on its own loss, from the one
   graph of ``group_losses``) *before* any group is updated, then each group's optimiser
   steps, in the order the groups are given. Stepping G before E's gradient is taken would
   change the weights E's backward pass goes through: this is what TensorFlow's
   ``sess.run([gen_op, enc_op])`` in the originals does, and it matters for ALAD, whose G
   and E losses share the cycle terms.

Random draws happen inside the model's functions, so their order is the model's: AnoEAN
draws its prior samples inside its discriminator loss; a GAN draws z for the discriminator
loss and a fresh z in its group losses.

In a distributed run (:mod:`anoean.training.distributed`), :meth:`AdversarialStep.distribute`
wraps each group's parameters in a DistributedDataParallel module: each loss passes through
its group's wrapper before its backward pass, and the gradients come out averaged over the
ranks. A group's gradient is then taken with ``backward(inputs=<the group's parameters>)``,
which fills the same gradients as ``torch.autograd.grad`` (the single-process path, kept as
it was) while letting the wrapper's hooks see them.

The step returns the detached losses for the history: ``loss_d``, then ``loss_<group>`` for
each group, then the discriminator loss's parts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: one optimiser step's losses, detached, by name (what :func:`anoean.training.loop.train_loop`
#: records)
Losses = dict[str, torch.Tensor]


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """The Adam optimiser every adversarial model uses (AnoEAN: ``ADAM_BETAS`` per encoder
    kind; the GANs: beta1 = 0.5, as in the originals)."""
    return torch.optim.Adam(params, lr=lr, betas=betas)


@dataclass
class Group:
    """Parameters updated together, and their optimiser."""

    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer

    @classmethod
    def adam(cls, params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> Group:
        params = list(params)
        return cls(params, adam(params, lr, betas))


class AdversarialStep:
    """One training step on index batches: ``step(idx_normal, idx_anomaly) -> losses``.

    Parameters
    ----------
    discriminator : Group
        The discriminator group: every discriminator's parameters and one optimiser.
    groups : mapping of str to Group
        The generator / encoder groups, updated in this order after the discriminator.
    discriminator_loss : callable
        ``batch -> (loss, parts)``; ``parts`` (name -> tensor) are recorded as they are.
    group_losses : callable
        ``batch -> {group name: loss}``, computed with the discriminators frozen.
    forward : callable, optional
        ``(idx_normal, idx_anomaly) -> batch``, what both loss functions receive; by
        default the pair of index tensors itself.
    """

    def __init__(
        self,
        discriminator: Group,
        groups: Mapping[str, Group],
        discriminator_loss: Callable[[Any], tuple[torch.Tensor, Mapping[str, torch.Tensor]]],
        group_losses: Callable[[Any], Mapping[str, torch.Tensor]],
        forward: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
    ) -> None:
        if not groups:
            raise ValueError("an adversarial step needs at least one generator / encoder group")
        self.discriminator = discriminator
        self.groups = dict(groups)
        self.discriminator_loss = discriminator_loss
        self.group_losses = group_losses
        self.forward = forward if forward is not None else _index_pair
        #: per group ("d" and each group's name), the DistributedDataParallel wrapper its
        #: loss passes through (:meth:`distribute`); empty in one process
        self.sync: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}

    def distribute(
        self, wrap: Callable[[Sequence[nn.Parameter]], Callable[[torch.Tensor], torch.Tensor]]
    ) -> None:
        """Average every group's gradients over the ranks of a distributed run: ``wrap``
        (:func:`anoean.training.distributed.group_sync`) builds each group's wrapper."""
        self.sync = {"d": wrap(self.discriminator.params)}
        self.sync.update({g: wrap(group.params) for g, group in self.groups.items()})

    def __call__(self, idx_n: torch.Tensor, idx_a: torch.Tensor) -> Losses:
        batch = self.forward(idx_n, idx_a)
        loss_d, parts = self.discriminator_loss(batch)
        opt_d = self.discriminator.optimizer
        opt_d.zero_grad(set_to_none=True)
        (self.sync["d"](loss_d) if self.sync else loss_d).backward()
        opt_d.step()
        losses = self._update_groups(batch)
        out = {"loss_d": loss_d.detach()}
        out.update({f"loss_{g}": losses[g].detach() for g in self.groups})
        out.update({k: v.detach() for k, v in parts.items()})
        return out

    def _update_groups(self, batch: Any) -> Mapping[str, torch.Tensor]:
        frozen = [p for p in self.discriminator.params if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            losses = self.group_losses(batch)
            names = list(self.groups)
            # every group's gradient first, then every update (see the module docstring)
            for i, g in enumerate(names):
                params = self.groups[g].params
                retain = i < len(names) - 1
                if self.sync:
                    for p in params:
                        p.grad = None
                    torch.autograd.backward(
                        self.sync[g](losses[g]), retain_graph=retain, inputs=params
                    )
                    continue
                grads = torch.autograd.grad(
                    losses[g], params, retain_graph=retain, allow_unused=True
                )
                _set_grads(params, grads)
            for g in names:
                self.groups[g].optimizer.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return losses


def _index_pair(idx_n: torch.Tensor, idx_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return idx_n, idx_a


def _set_grads(params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g
