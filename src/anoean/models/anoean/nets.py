"""AnoEAN's networks and its training step: the encoder E (input scaling, then an MLP or
conv body), the discriminator D on the decision space, the choices the paper leaves open,
and :func:`make_step`, the one adversarial step
(:class:`~anoean.training.adversarial.AdversarialStep`) with AnoEAN's losses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anoean.nn.blocks import MLP, ConvEncoder, Standardize
from anoean.nn.generator import generator_loss, reference_rows
from anoean.nn.losses import anoean_discriminator_loss, anoean_encoder_loss, neg_log_1m_d
from anoean.training.adversarial import AdversarialStep, Group, Losses

ENCODER_HIDDEN = (128, 64, 32)
DISCRIMINATOR_HIDDEN = (32, 16)
#: Adam's (beta1, beta2) for E and D, per encoder kind. The paper gives Adam and lr=1e-3
#: only. For the conv encoder beta1=0.5 (the usual adversarial-training choice): with 0.9,
#: momentum carried E's codes far out of N(0, I) (median code norm 200-560 on MNIST within
#: 2-4 epochs) before D caught up, and those epochs were lost. The MLP encoder shows no such
#: excursion; there beta1=0.5 changed validation AUC-PR on NSL-KDD by less than the spread
#: over seeds and left the synthetic test's normal codes off-centre, so it keeps Adam's
#: default (docs/anoean_dynamics.md).
ADAM_BETAS = {"mlp": (0.9, 0.999), "conv": (0.5, 0.999)}
#: Batch normalisation after the conv encoder's 2nd and 3rd convolutions (DCGAN style; not
#: after the first, nor on the code). The paper does not say; with it the conv encoder trains
#: faster and more steadily and reaches a better validation AUC-PR (docs/anoean_dynamics.md).
CONV_BATCH_NORM = True


class Encoder(nn.Module):
    """Input scaling, then the MLP (128-64-32-d) or conv (32-64-128 filters, then d) body."""

    def __init__(self, in_shape: Sequence[int], latent_dim: int, kind: str) -> None:
        super().__init__()
        self.scaler = Standardize(tuple(in_shape))
        if kind == "mlp":
            self.body: MLP | ConvEncoder = MLP([int(in_shape[0]), *ENCODER_HIDDEN, latent_dim])
        else:
            self.body = ConvEncoder(in_shape, latent_dim, batch_norm=CONV_BATCH_NORM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.scaler(x))

    def spec(self, prefix: str | None = None) -> dict[str, Any]:
        """The body's architecture (:meth:`anoean.nn.blocks.MLP.spec`) with its
        ``input_scaling``; ``prefix`` is the encoder's name in the saved weights."""
        sub = None if prefix is None else f"{prefix}.body"
        scaler = None if prefix is None else f"{prefix}.scaler"
        return {**self.body.spec(sub), "input_scaling": self.scaler.spec(scaler)}


class Discriminator(nn.Module):
    """MLP d-32-16-1 returning a logit (D = sigmoid(logit))."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.body = MLP([latent_dim, *DISCRIMINATOR_HIDDEN, 1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).squeeze(-1)

    def spec(self, prefix: str | None = None) -> dict[str, Any]:
        return self.body.spec(None if prefix is None else f"{prefix}.body")


@dataclass
class Generated:
    """The anomaly generator's part of a training step (:mod:`anoean.nn.generator`): the
    generator network and its optimiser group, the generated rows per step, and the fence
    radius r_b of its objective."""

    group: Group
    net: nn.Module
    n_rows: int
    #: the scaled training normals the off-the-data term measures against
    reference: torch.Tensor
    #: the off-the-data margin m (:func:`anoean.nn.generator.reference_rows`' spacing times
    #: ``generator_margin``)
    margin: float
    #: weight of the generated rows' terms in L_D and L_E
    weight: float = 1.0

    def sample(self, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return sample_generator(self.net, self.n_rows, generator, device)


def sample_generator(
    net: nn.Module, n: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``n`` rows of the anomaly generator ``net``, from noise drawn with ``generator``."""
    noise_dim = net.noise_dim
    assert isinstance(noise_dim, int)
    eps = torch.randn(n, noise_dim, generator=generator, device=device)
    return net(eps)


def generated_rows(n_normal: int) -> int:
    """Generated rows per step: half the step's normal rows, at least 16."""
    return max(16, n_normal // 2)


def make_generated(
    group: Group,
    net: nn.Module,
    scaler: nn.Module,
    Xn: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    margin: float = 1.0,
    weight: float = 1.0,
) -> Generated:
    """The generator's part of the step, with its reference rows: the training normals
    ``Xn`` through the input ``scaler``."""
    with torch.no_grad():
        reference, spacing = reference_rows(scaler(Xn), generator)
    n_rows = generated_rows(min(batch_size, int(Xn.shape[0])))
    return Generated(group, net, n_rows, reference, spacing * margin, weight)


def make_step(
    encoder: nn.Module,
    disc: nn.Module,
    opt_e: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    Xn: torch.Tensor,
    Xa: torch.Tensor,
    generator: torch.Generator,
    generated: Generated | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
    """One AnoEAN training step on index batches: a D step (E frozen), then an E step (D
    frozen), as an :class:`~anoean.training.adversarial.AdversarialStep` with one group, "e".

    With ``generated`` (the anomaly generator, :mod:`anoean.nn.generator`), each step also
    draws ``generated.n_rows`` rows from G, whose codes enter L_D and L_E as a third group of
    anomalies (a mean of their own), and a second group, "g", minimises L_G; G's rows are in
    the encoder's scaled input space, so they enter the encoder after its scaling layer.
    Without it the step is the paper's, draw for draw.

    The batch is encoded ONCE, with a graph (the step's ``forward``). The D step uses the
    detached codes: E's weights do not change during the D step, so these are exactly the
    codes a separate no-grad forward would give. The E step then re-runs only the small D,
    with its updated weights, on the same codes and back-propagates through them into E. For
    the weights this is the plain alternation "encode under no_grad, update D; encode again
    with grad, update E", bit for bit
    (``tests/test_anoean.py::test_step_reuses_codes_bit_identically``), minus one encoder
    forward per step. The one difference is in batch-norm running statistics: the plain form,
    encoding each batch twice in training mode, folded every batch into them twice; here each
    batch counts once. (Training-mode outputs use the batch's own statistics, so the weights
    are unaffected either way.)
    """
    if generated is not None:
        return _make_generated_step(encoder, disc, opt_e, opt_d, Xn, Xa, generator, generated)
    dev = Xn.device

    def forward(idx_n: torch.Tensor, idx_a: torch.Tensor) -> tuple[torch.Tensor, int]:
        xn, xa = Xn[idx_n], Xa[idx_a]
        x = torch.cat([xn, xa]) if xa.shape[0] else xn
        return encoder(x), xn.shape[0]

    def d_loss(batch: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        codes, n_n = batch
        # E frozen: detached codes carry no gradient into E
        z = torch.randn(n_n, codes.shape[1], generator=generator, device=dev)
        logits = disc(torch.cat([z, codes.detach()]))
        loss = anoean_discriminator_loss(logits[:n_n], logits[n_n : 2 * n_n], logits[2 * n_n :])
        return loss, {}

    def e_loss(batch: tuple[torch.Tensor, int]) -> dict[str, torch.Tensor]:
        codes, n_n = batch
        # D frozen: gradients flow through the updated D into E, D's weights get none
        logits = disc(codes)
        return {"e": anoean_encoder_loss(logits[:n_n], logits[n_n:])}

    return AdversarialStep(
        Group(list(disc.parameters()), opt_d),
        {"e": Group(list(encoder.parameters()), opt_e)},
        d_loss,
        e_loss,
        forward,
    )


#: one generated step's batch: the codes (normal, labelled, generated), the normal and
#: labelled counts, and the generated rows
_GenBatch = tuple[torch.Tensor, int, int, torch.Tensor]


def _make_generated_step(
    encoder: nn.Module,
    disc: nn.Module,
    opt_e: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    Xn: torch.Tensor,
    Xa: torch.Tensor,
    generator: torch.Generator,
    generated: Generated,
) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
    """:func:`make_step` with the anomaly generator (groups "e" then "g")."""
    dev = Xn.device
    assert isinstance(encoder, Encoder)
    scaler, body = encoder.scaler, encoder.body

    def forward(idx_n: torch.Tensor, idx_a: torch.Tensor) -> _GenBatch:
        xn, xa = Xn[idx_n], Xa[idx_a]
        xs = scaler(torch.cat([xn, xa]) if xa.shape[0] else xn)
        xg = generated.sample(generator, dev)
        codes = body(torch.cat([xs, xg]))
        return codes, xn.shape[0], xa.shape[0], xg

    def d_loss(batch: _GenBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        codes, n_n, n_a, _ = batch
        z = torch.randn(n_n, codes.shape[1], generator=generator, device=dev)
        logits = disc(torch.cat([z, codes.detach()]))
        real, normal = logits[:n_n], logits[n_n : 2 * n_n]
        labelled, fake = logits[2 * n_n : 2 * n_n + n_a], logits[2 * n_n + n_a :]
        loss = anoean_discriminator_loss(real, normal, labelled)
        return loss + generated.weight * neg_log_1m_d(fake), {}

    def group_losses(batch: _GenBatch) -> dict[str, torch.Tensor]:
        codes, n_n, n_a, xg = batch
        logits = disc(codes)
        normal, labelled, fake = logits[:n_n], logits[n_n : n_n + n_a], logits[n_n + n_a :]
        loss_e = anoean_encoder_loss(normal, labelled) + generated.weight * neg_log_1m_d(fake)
        normal_codes = codes[:n_n].detach()
        loss_g = generator_loss(
            codes[n_n + n_a :], xg, normal_codes, generated.reference, generated.margin
        )
        return {"e": loss_e, "g": loss_g}

    return AdversarialStep(
        Group(list(disc.parameters()), opt_d),
        {"e": Group(list(encoder.parameters()), opt_e), "g": generated.group},
        d_loss,
        group_losses,
        forward,
    )
