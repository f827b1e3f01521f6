"""AnoEANPlus's networks and its training step.

:class:`PlusScorer` is the whole inference graph, one plain module: the input scaling, K
AnoEAN encoders (the paper's MLP, 128-64-32-d), the Mahalanobis distance of each code to the
Gaussian of its encoded training normals, each distance's log normalised on held-out normals
(median and interquartile range), the supervised head on the scaled input, the codes and the
normalised distances, and the fusion of the head's normalised logit with the mean normalised
distance. :func:`make_ensemble_step` is the adversarial step of the K encoders (AnoEAN's
losses, with the trimmed normal terms of :func:`trimmed_normals`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from anoean.core.gaussian import mahalanobis_torch
from anoean.models.anoean.nets import (
    DISCRIMINATOR_HIDDEN,
    ENCODER_HIDDEN,
    Generated,
    sample_generator,
)
from anoean.nn.blocks import MLP, Standardize
from anoean.nn.generator import generator_loss
from anoean.nn.losses import anoean_discriminator_loss, anoean_encoder_loss, neg_log_1m_d
from anoean.training.adversarial import AdversarialStep, Group, Losses

#: hidden widths of the supervised head
HEAD_HIDDEN = (64, 32)
#: what the head can read, in this order: the scaled row, every member's code, every
#: member's normalised distance
INPUT_KINDS = ("x", "codes", "distances")
#: what it reads by default
HEAD_INPUTS = ("x",)


class PlusScorer(nn.Module):
    """The anomaly score of AnoEANPlus, from raw rows (see the module docstring).

    Buffers (float64 where they enter the distance): ``mu`` (K, d) and ``whiten`` (K, d, d),
    the Gaussians; ``u_center``, ``u_scale`` (K,), the normalisation of log(1 + distance);
    ``f_shift``, ``f_scale`` (F,), the standardisation of the head's input; ``h_center``,
    ``h_scale``, the normalisation of its logit; ``h_floor``, the floor of the normalised logit
    (0 for the one-sided fusion, -inf for the linear one); ``weight``, the share of the
    distance in the fused score (1: the head is not used); ``max_fusion``, 1 when the score is
    the larger of the mean normalised distance and the normalised logit (then ``weight`` and
    ``h_floor`` are unused).
    """

    def __init__(
        self,
        in_dim: int,
        latent_dim: int,
        n_members: int,
        head: bool,
        head_inputs: tuple[str, ...] = HEAD_INPUTS,
    ) -> None:
        super().__init__()
        self.in_dim, self.latent_dim, self.n_members = int(in_dim), int(latent_dim), n_members
        unknown = set(head_inputs) - set(INPUT_KINDS)
        if unknown or not head_inputs:
            raise ValueError(f"head_inputs must be a non-empty subset of {INPUT_KINDS}")
        self.head_inputs = tuple(k for k in INPUT_KINDS if k in head_inputs)
        self.scaler = Standardize((in_dim,))
        self.encoders = nn.ModuleList(
            MLP([in_dim, *ENCODER_HIDDEN, latent_dim]) for _ in range(n_members)
        )
        widths = {"x": in_dim, "codes": n_members * latent_dim, "distances": n_members}
        self.head_in = sum(widths[k] for k in self.head_inputs)
        self.head = MLP([self.head_in, *HEAD_HIDDEN, 1]) if head else None
        f64 = torch.float64
        self.register_buffer("mu", torch.zeros(n_members, latent_dim, dtype=f64))
        self.register_buffer("whiten", torch.zeros(n_members, latent_dim, latent_dim, dtype=f64))
        self.register_buffer("u_center", torch.zeros(n_members, dtype=f64))
        self.register_buffer("u_scale", torch.ones(n_members, dtype=f64))
        self.register_buffer("f_shift", torch.zeros(self.head_in))
        self.register_buffer("f_scale", torch.ones(self.head_in))
        self.register_buffer("h_center", torch.zeros((), dtype=f64))
        self.register_buffer("h_scale", torch.ones((), dtype=f64))
        self.register_buffer("weight", torch.ones((), dtype=f64))
        self.register_buffer("h_floor", torch.zeros((), dtype=f64))
        self.register_buffer("max_fusion", torch.zeros((), dtype=f64))

    head: MLP | None
    head_in: int
    mu: torch.Tensor
    whiten: torch.Tensor
    u_center: torch.Tensor
    u_scale: torch.Tensor
    f_shift: torch.Tensor
    f_scale: torch.Tensor
    h_center: torch.Tensor
    h_scale: torch.Tensor
    weight: torch.Tensor
    h_floor: torch.Tensor
    max_fusion: torch.Tensor

    @torch.no_grad()
    def reset_fitted(self) -> PlusScorer:
        """Give the fitted buffers their neutral values (:func:`anoean.nn.blocks.build`
        materialises buffers uninitialised): no Gaussian, no normalisation, no head."""
        for name in ("mu", "whiten", "u_center", "f_shift", "h_center", "h_floor", "max_fusion"):
            getattr(self, name).zero_()
        for name in ("u_scale", "f_scale", "h_scale", "weight"):
            getattr(self, name).fill_(1.0)
        return self

    def codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's code of the scaled rows, (n, d) each."""
        xs = self.scaler(x)
        return [enc(xs) for enc in self.encoders]

    def distances(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Mahalanobis distance of each member's code to its Gaussian, (n, K), float64."""
        return torch.stack(
            [mahalanobis_torch(z, self.mu[k], self.whiten[k]) for k, z in enumerate(codes)], 1
        )

    def normalised(self, dist: torch.Tensor) -> torch.Tensor:
        """(log(1 + distance) - center) / scale per member, (n, K), float64."""
        return (torch.log1p(dist) - self.u_center) / self.u_scale

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The scaled rows, each member's code and the normalised distances (n, K): the
        input scaling runs once for the encoders and the head."""
        xs = self.scaler(x)
        codes = [enc(xs) for enc in self.encoders]
        return xs, codes, self.normalised(self.distances(codes))

    def raw_head_features(
        self, xs: torch.Tensor, codes: list[torch.Tensor], u: torch.Tensor
    ) -> torch.Tensor:
        """The head's input (:attr:`head_inputs`) from the :meth:`parts` of the rows."""
        parts = {"x": [xs], "codes": codes, "distances": [u.to(xs.dtype)]}
        return torch.cat([t for k in self.head_inputs for t in parts[k]], 1)

    def head_logit(self, xs: torch.Tensor, codes: list[torch.Tensor], u: torch.Tensor) -> Any:
        """The head's logit from the :meth:`parts` of the rows (its input standardised)."""
        assert self.head is not None
        f = (self.raw_head_features(xs, codes, u) - self.f_shift) / self.f_scale
        return self.head(f).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs, codes, u = self.parts(x)
        score = u.mean(1)
        if self.head is None:
            return score
        h = (self.head_logit(xs, codes, u).to(torch.float64) - self.h_center) / self.h_scale
        if bool(self.max_fusion):
            return torch.maximum(score, h)
        h = torch.maximum(h, self.h_floor)
        return self.weight * score + (1.0 - self.weight) * h

    def spec(self, prefix: str) -> dict[str, Any]:
        """The architecture, with the array names of every layer (what the numpy scorer and
        the ONNX graph read)."""
        return {
            "kind": "anoean_plus",
            "input_scaling": self.scaler.spec(f"{prefix}.scaler"),
            "encoders": [
                cast(MLP, enc).spec(f"{prefix}.encoders.{k}") for k, enc in enumerate(self.encoders)
            ],
            "head": None if self.head is None else self.head.spec(f"{prefix}.head"),
            "head_inputs": list(self.head_inputs),
            "buffers": {
                name: f"{prefix}.{name}"
                for name in (
                    "mu",
                    "whiten",
                    "u_center",
                    "u_scale",
                    "f_shift",
                    "f_scale",
                    "h_center",
                    "h_scale",
                    "weight",
                    "h_floor",
                    "max_fusion",
                )
            },
        }


class Discriminators(nn.ModuleList):
    """One AnoEAN discriminator (d-32-16-1, a logit) per member."""

    def __init__(self, latent_dim: int, n_members: int) -> None:
        super().__init__(MLP([latent_dim, *DISCRIMINATOR_HIDDEN, 1]) for _ in range(n_members))


def trimmed_normals(codes: torch.Tensor, trim: float) -> torch.Tensor:
    """The normal codes of a batch without its ``trim`` share farthest from the prior's mean.

    The unlabelled rows hide anomalies. Pulling them into N(0, I) with the rest teaches the
    encoder to call them normal; leaving the farthest out of the normal terms of L_D and L_E
    (a trimmed loss) lets the encoder leave them outside. Selection by the squared norm of the
    code, the prior's own log-density up to a constant, needs no fitted Gaussian.
    """
    k = int(math.floor(trim * codes.shape[0]))
    if k == 0 or k >= codes.shape[0]:
        return codes
    with torch.no_grad():
        keep = torch.topk(codes.pow(2).sum(1), codes.shape[0] - k, largest=False).indices
    return codes[keep]


def make_ensemble_step(
    scorer: PlusScorer,
    discs: Discriminators,
    opt_e: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    Xn: torch.Tensor,
    Xa: torch.Tensor,
    trim: float,
    generator: torch.Generator,
    generated: Generated | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
    """One step of every member on the same batch: AnoEAN's D step (E frozen), then its E
    step (D frozen), with the trimmed normal terms. The members share no parameter, so one
    summed loss per group gives each member exactly its own gradients.

    With ``generated`` (``generated.net`` holds one anomaly generator per member,
    :mod:`anoean.nn.generator`), each member's generator draws ``generated.n_rows`` rows per
    step, in the scaled input space; their codes enter that member's L_D and L_E as a group
    of anomalies of their own, and a third group, "g", minimises the members' summed L_G.
    """
    dev = Xn.device
    gens = cast(nn.ModuleList, generated.net) if generated is not None else None

    def forward(idx_n: torch.Tensor, idx_a: torch.Tensor) -> _Batch:
        xn, xa = Xn[idx_n], Xa[idx_a]
        x = torch.cat([xn, xa]) if xa.shape[0] else xn
        if gens is None:
            return scorer.codes(x), xn.shape[0], xa.shape[0], []
        assert generated is not None
        xs = scorer.scaler(x)
        fakes = [sample_generator(g, generated.n_rows, generator, dev) for g in gens]
        codes = [enc(torch.cat([xs, xg])) for enc, xg in zip(scorer.encoders, fakes, strict=True)]
        return codes, xn.shape[0], xa.shape[0], fakes

    def d_loss(batch: _Batch) -> tuple[torch.Tensor, dict]:
        codes, n_n, n_a, _ = batch
        total = torch.zeros((), device=dev)
        for disc, c in zip(discs, codes, strict=True):
            c = c.detach()
            normal = trimmed_normals(c[:n_n], trim)
            z = torch.randn(n_n, c.shape[1], generator=generator, device=dev)
            logits = disc(torch.cat([z, normal, c[n_n:]])).squeeze(-1)
            m = normal.shape[0]
            rest = logits[n_n + m :]
            prior, normal_l = logits[:n_n], logits[n_n : n_n + m]
            total = total + anoean_discriminator_loss(prior, normal_l, rest[:n_a])
            if generated is not None:
                total = total + generated.weight * neg_log_1m_d(rest[n_a:])
        return total, {}

    def e_loss(batch: _Batch) -> dict[str, torch.Tensor]:
        codes, n_n, n_a, fakes = batch
        total = torch.zeros((), device=dev)
        loss_g = torch.zeros((), device=dev)
        for k, (disc, c) in enumerate(zip(discs, codes, strict=True)):
            normal = trimmed_normals(c[:n_n], trim)
            logits = disc(torch.cat([normal, c[n_n:]])).squeeze(-1)
            m = normal.shape[0]
            total = total + anoean_encoder_loss(logits[:m], logits[m : m + n_a])
            if gens is not None:
                assert generated is not None
                total = total + generated.weight * neg_log_1m_d(logits[m + n_a :])
                loss_g = loss_g + generator_loss(
                    c[n_n + n_a :],
                    fakes[k],
                    c[:n_n].detach(),
                    generated.reference,
                    generated.margin,
                )
        return {"e": total} if gens is None else {"e": total, "g": loss_g}

    groups = {"e": Group([p for e in scorer.encoders for p in e.parameters()], opt_e)}
    if generated is not None:
        groups["g"] = generated.group
    return AdversarialStep(
        Group([p for d in discs for p in d.parameters()], opt_d),
        groups,
        d_loss,
        e_loss,
        forward,
    )


#: one step's batch: each member's codes (normal, labelled, generated rows), the normal and
#: labelled counts, and each member's generated rows
_Batch = tuple[list[torch.Tensor], int, int, list[torch.Tensor]]
