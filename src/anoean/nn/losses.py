"""Adversarial losses, written once on discriminator *logits*.

With ``D = sigmoid(l)``: ``-log D = softplus(-l)`` and ``-log(1 - D) = softplus(l)``, which
is the numerically stable form of binary cross-entropy. Every GAN in the package (AnoEAN,
AnoGAN, EGBAD, ALAD) builds its losses from :func:`neg_log_d` and :func:`neg_log_1m_d`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def neg_log_d(logits: torch.Tensor) -> torch.Tensor:
    """``-E[log D]``: the loss of samples the discriminator should call real."""
    return F.softplus(-logits).mean()


def neg_log_1m_d(logits: torch.Tensor) -> torch.Tensor:
    """``-E[log(1 - D)]``: the loss of samples the discriminator should call fake."""
    return F.softplus(logits).mean()


def _has(t: torch.Tensor | None) -> bool:
    return t is not None and t.numel() > 0


def anoean_discriminator_loss(
    d_prior: torch.Tensor, d_normal: torch.Tensor, d_anomaly: torch.Tensor | None = None
) -> torch.Tensor:
    """L_D = -E_z[log D(z)] - E_xn[log(1 - D(E(xn)))] - E_xa[log(1 - D(E(xa)))].

    Each expectation is a mean over its own group, exactly as written: the rarity of the
    anomalies changes the variance of their term, not its weight. With no anomalies the third
    term is absent.
    """
    loss = neg_log_d(d_prior) + neg_log_1m_d(d_normal)
    if d_anomaly is not None and _has(d_anomaly):
        loss = loss + neg_log_1m_d(d_anomaly)
    return loss


def anoean_encoder_loss(
    d_normal: torch.Tensor, d_anomaly: torch.Tensor | None = None
) -> torch.Tensor:
    """L_E = -E_xn[log D(E(xn))] - E_xa[log(1 - D(E(xa)))].

    Normal codes are pushed towards what D believes is N(0, I), known anomalies away from it.
    With no anomalies only the first term remains.
    """
    loss = neg_log_d(d_normal)
    if d_anomaly is not None and _has(d_anomaly):
        loss = loss + neg_log_1m_d(d_anomaly)
    return loss
