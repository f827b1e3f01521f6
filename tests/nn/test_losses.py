"""The loss code matches DEVELOPERS.md's formulas, computed by hand on a tiny example."""

from __future__ import annotations

import math

import torch

from anoean.nn.losses import anoean_discriminator_loss, anoean_encoder_loss


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# logits of D on prior samples z, encoded normals and encoded anomalies
LZ = [0.5, -1.0]
LN = [2.0, 0.0, -0.5]
LA = [1.5]


def test_discriminator_loss_by_hand():
    # L_D = -mean log D(z) - mean log(1 - D(E(xn))) - mean log(1 - D(E(xa)))
    expected = (
        -sum(math.log(sig(v)) for v in LZ) / len(LZ)
        - sum(math.log(1 - sig(v)) for v in LN) / len(LN)
        - sum(math.log(1 - sig(v)) for v in LA) / len(LA)
    )
    got = anoean_discriminator_loss(torch.tensor(LZ), torch.tensor(LN), torch.tensor(LA))
    assert math.isclose(got.item(), expected, rel_tol=1e-6)


def test_encoder_loss_by_hand():
    # L_E = -mean log D(E(xn)) - mean log(1 - D(E(xa)))
    expected = -sum(math.log(sig(v)) for v in LN) / len(LN) - sum(
        math.log(1 - sig(v)) for v in LA
    ) / len(LA)
    got = anoean_encoder_loss(torch.tensor(LN), torch.tensor(LA))
    assert math.isclose(got.item(), expected, rel_tol=1e-6)


def test_losses_without_anomalies_keep_only_normal_terms():
    exp_e = -sum(math.log(sig(v)) for v in LN) / len(LN)
    exp_d = -sum(math.log(sig(v)) for v in LZ) / len(LZ) - sum(
        math.log(1 - sig(v)) for v in LN
    ) / len(LN)
    empty = torch.empty(0)
    assert math.isclose(anoean_encoder_loss(torch.tensor(LN), empty).item(), exp_e, rel_tol=1e-6)
    assert math.isclose(anoean_encoder_loss(torch.tensor(LN)).item(), exp_e, rel_tol=1e-6)
    got_d = anoean_discriminator_loss(torch.tensor(LZ), torch.tensor(LN), empty)
    assert math.isclose(got_d.item(), exp_d, rel_tol=1e-6)


def test_losses_are_stable_for_extreme_logits():
    big = torch.tensor([80.0, -80.0])
    assert torch.isfinite(anoean_discriminator_loss(big, big, big))
    assert torch.isfinite(anoean_encoder_loss(big, big))
