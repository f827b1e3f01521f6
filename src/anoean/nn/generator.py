"""The learned anomaly generator G and its objective in AnoEAN's latent frame.

The paper's future work (its section 4): remove every labelled anomaly from training by
learning an anomaly generator that has the current encoder E and discriminator D as
adversaries. G maps noise ``eps ~ N(0, I_q)`` to the encoder's (scaled) input space; its
samples ``x_g = G(eps)`` take the place of the labelled anomalies ``x_a`` in L_D and L_E
(beside them when there are labelled ones):

    L_D = -E_z[log D(z)] - E_xn[log(1 - D(E(xn)))] - E_xa[log(1 - D(E(xa)))]
          - E_eps[log(1 - D(E(G(eps))))]
    L_E = -E_xn[log D(E(xn))] - E_xa[log(1 - D(E(xa)))] - E_eps[log(1 - D(E(G(eps))))]

so E learns to send G's samples out of N(0, I). G is trained against E: it looks for the
inputs that E still maps onto the edge of the normal region. FenceGAN, OCAN and SO-GAAL do
this in input space, with a discriminator's output as the fence; here the fence is drawn in
AnoEAN's latent frame, around the codes of the step's normal rows c_n: with their mean m_c
and per-dimension spread s_c (detached), a code's standardised radius is
rho(c) = ||(c - m_c) / s_c||, and the fence is

    r_b = the (1 - delta) quantile of rho(c_n) over the step's normal rows,  delta = 0.01,

just outside all but 1% of the normal codes. (The prior's own radius, sqrt(chi2_d(1 - delta)),
would be the fence if E matched N(0, I) exactly; it does not always: on ADBench's vowels,
with no labelled anomaly, the median normal code norm was 26 for the prior's 4, and a fence
at the prior's radius put G's samples among the normal codes.) G minimises
(:func:`generator_loss`)

    L_G = E_eps[(log rho(E(G(eps))) - log r_b)^2]                          (encirclement)
        + || E_eps[u(E(G(eps)))] ||^2,  u(c) = ((c - m_c) / s_c) / rho(c)   (dispersion)
        + E_eps[relu(1 - min_i ||G(eps) - x_n,i|| / m)^2]                   (off the data)

* *encirclement* keeps the codes of G's samples on the fence: not inside (a sample E maps
  into N(0, I) may be a normal row) and not far out (a sample E already rejects teaches it
  nothing);
* *dispersion* spreads their directions over the sphere (the mean unit code is zero when the
  directions are balanced): without it G collapses onto the one weak spot of E, FenceGAN's
  reason for its dispersion term;
* *off the data* keeps each sample at least ``m`` from every normal row of the batch in the
  scaled input space, where ``m`` is the median distance from a normal row of the batch to its
  nearest other normal row (detached): a generated row closer to the data than the data's own
  spacing would be a normal row, and E would learn to reject normal data.

The generator is used only in training: it is not saved, and scoring needs the encoder alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anoean.nn.blocks import MLP, describe
from anoean.nn.gan import deconv_layers

#: share of the normal codes outside the fence r_b
BOUNDARY_TAIL = 0.01
#: size q of G's noise
NOISE_DIM = 32
#: G's hidden widths (tables)
GENERATOR_HIDDEN = (64, 128)
#: the most training normals the off-the-data term measures against
REFERENCE_ROWS = 4096


class TableGenerator(nn.Module):
    """G for tables: noise (q) -> 64 -> 128 -> p, LeakyReLU(0.2), linear output in the
    encoder's scaled input space."""

    def __init__(self, n_features: int, noise_dim: int = NOISE_DIM) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.body = MLP([noise_dim, *GENERATOR_HIDDEN, n_features])

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        return self.body(eps)

    def spec(self) -> dict[str, Any]:
        return {"kind": "table_generator", "noise_dim": self.noise_dim, **self.body.spec()}


class ImageGenerator(nn.Module):
    """G for images: noise (q) -> 128 x ceil(H/4) x ceil(W/4) (batch norm, ReLU), then two
    4x4 stride-2 transposed convolutions 128 -> 64 -> C, linear output cropped to (H, W)."""

    def __init__(self, out_shape: Sequence[int], noise_dim: int = NOISE_DIM) -> None:
        super().__init__()
        c, h, w = (int(s) for s in out_shape)
        self.noise_dim, self.out_shape = noise_dim, (c, h, w)
        self.h0, self.w0 = math.ceil(h / 4), math.ceil(w / 4)
        self.fc = nn.Sequential(
            nn.Linear(noise_dim, 128 * self.h0 * self.w0),
            nn.BatchNorm1d(128 * self.h0 * self.w0),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(*deconv_layers(c))

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        x = self.deconv(self.fc(eps).view(-1, 128, self.h0, self.w0))
        _, h, w = self.out_shape
        return x[:, :, :h, :w]

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "image_generator",
            "noise_dim": self.noise_dim,
            "fc": describe(self.fc),
            "deconv": describe(self.deconv),
            "out_shape": list(self.out_shape),
        }


def make_generator(in_shape: Sequence[int]) -> nn.Module:
    """The generator for inputs of shape ``in_shape``: (p,) tables or (C, H, W) images."""
    shape = tuple(int(s) for s in in_shape)
    return TableGenerator(shape[0]) if len(shape) == 1 else ImageGenerator(shape)


def reference_rows(
    xn: torch.Tensor, generator: torch.Generator, max_rows: int = REFERENCE_ROWS
) -> tuple[torch.Tensor, float]:
    """The normal rows the off-the-data term measures against (all the scaled training
    normals ``xn``, or ``max_rows`` of them drawn with ``generator``), and their spacing m:
    the (1 - :data:`BOUNDARY_TAIL`) quantile of the distance from a reference row to its
    nearest other reference row: a new normal row is rarely farther from the data."""
    n = int(xn.shape[0])
    if n > max_rows:
        idx = torch.randperm(n, generator=generator, device=generator.device)[:max_rows]
        xn = xn[idx.to(xn.device)]
    ref = xn.detach().flatten(1)
    if ref.shape[0] < 2:
        return ref, 1.0
    nearest = []
    with torch.no_grad():
        for chunk in ref.split(1024):
            d = torch.cdist(chunk, ref)
            # a row's distance to itself is 0: the second smallest is its nearest other row
            nearest.append(d.topk(2, dim=1, largest=False).values[:, 1])
    spacing = float(torch.quantile(torch.cat(nearest), 1.0 - BOUNDARY_TAIL))
    return ref, max(spacing, 1e-6)


def nearest_normal_margin(xg: torch.Tensor, reference: torch.Tensor, m: float) -> torch.Tensor:
    """The off-the-data term: mean of ``relu(1 - d_i / m)^2``, where ``d_i`` is the distance
    from generated row i to its nearest reference normal row and ``m`` the margin (the
    reference rows' spacing times ``generator_margin``)."""
    dg = torch.cdist(xg.flatten(1), reference).min(1).values
    return F.relu(1.0 - dg / m).pow(2).mean()


def generator_loss(
    codes: torch.Tensor,
    xg: torch.Tensor,
    normal_codes: torch.Tensor,
    reference: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """L_G (module docstring) of generated rows ``xg`` (in the scaled input space) and their
    codes ``codes`` = E(xg), given the step's normal codes ``normal_codes``, which set the
    fence (detached), and the reference normal rows with the margin m of the off-the-data
    term (:func:`reference_rows`)."""
    with torch.no_grad():
        center = normal_codes.mean(0)
        scale = normal_codes.std(0).clamp_min(1e-6) if normal_codes.shape[0] > 1 else None
        if scale is None:
            scale = torch.ones_like(center)
        dist_n = ((normal_codes - center) / scale).norm(dim=1)
        radius = torch.quantile(dist_n, 1.0 - BOUNDARY_TAIL).clamp_min(1e-3)
    rel = (codes - center) / scale
    norm = rel.norm(dim=1).clamp_min(1e-6)
    encircle = (norm.log() - radius.log()).pow(2).mean()
    disperse = (rel / norm.unsqueeze(1)).mean(0).pow(2).sum()
    return encircle + disperse + nearest_normal_margin(xg, reference, margin)
