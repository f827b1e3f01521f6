"""ALAD (Zenati et al., ICDM 2018, "Adversarially learned anomaly detection"): a BiGAN with
two cycle-consistency discriminators, scored by Dxx feature matching.

Networks: encoder E, generator G, and three discriminators (each a logit plus a feature
layer):

* Dxz on (x, z) pairs, as in a BiGAN: (x, E(x)) real, (G(z), z) fake;
* Dxx on (x, x'): (x, x) real, (x, G(E(x))) fake, which pushes G(E(x)) towards x;
* Dzz on (z, z'): (z, z) real, (z, E(G(z))) fake, which pushes E(G(z)) towards z.

Losses, as in the authors' ``alad/run.py`` (with ``--enable_dzz``): each discriminator
minimises its binary cross-entropy; with ``cost_x = -log(1 - Dxx(x, x)) - log Dxx(x, G(E(x)))``
and ``cost_z`` likewise, G minimises ``-log Dxz(G(z), z) + cost_x + cost_z`` and E minimises
``-log(1 - Dxz(x, E(x))) + cost_x + cost_z``; G and E are updated from the same forward pass,
each with the gradient of its own loss.

Score (the code's ``fm`` score with ``--d 1``): ``||f_xx(x, x) - f_xx(x, G(E(x)))||_1``.

Spectral normalisation: the original applies it (``--sn``) in its conv nets, to the encoder's
convolutions and to every hidden layer of the three discriminators; its KDD MLPs accept the
flag but ignore it. We do the same: spectral norm in ``network="conv"``, none in "mlp".

Image nets: the ALAD repository has no 28x28 nets (its conv nets are for 32x32 CIFAR-10 /
SVHN). For ``network="conv"`` we use the same authors' MNIST BiGAN nets from EGBAD for E, G
and Dxz (with spectral normalisation added as ALAD does), and ALAD's own conv Dxx (two 5x5
stride-2 convolutions, 64 and 128 filters) and Dzz (2d -> 64 -> 32 -> 1).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from anoean.models.gan import GANDetector
from anoean.nn.gan import (
    BiGANConvEncoder,
    ConvGenerator,
    ConvJointDiscriminator,
    ConvPairDiscriminator,
    MLPEncoder,
    MLPGenerator,
    MLPJointDiscriminator,
    PairDiscriminator,
)
from anoean.nn.losses import neg_log_1m_d, neg_log_d


class ALAD(GANDetector):
    """ALAD: adversarially learned anomaly detection (BiGAN + cycle discriminators).

    Parameters
    ----------
    network : {"mlp", "conv"}, default="mlp"
        "mlp": the original KDD nets (E: p-64-d, LeakyReLU 0.2; G: d-64-128-p; Dxz: x -> 128
        with batch norm, z -> 128, joint 128 -> 1, dropout 0.5; Dxx: 2p -> 128 -> 1; Dzz:
        2d -> 32 -> 1, dropout 0.2). "conv": see the module docstring.
    latent_dim, batch_size, lr, max_epochs, patience, validation_fraction, scaling
        As for :class:`~anoean.baselines.AnoGAN` (originals' defaults: d = 32 / 200, batches
        of 50 / 100, Adam lr 1e-5 with beta1 0.5).
    contamination, target_false_alarm, random_state, device, verbose
        As for :class:`anoean.AnoEAN`.

    Attributes
    ----------
    nets_ : torch.nn.ModuleDict
        ``scaler``, ``encoder``, ``generator``, ``d_xz``, ``d_xx`` and ``d_zz``.
    history_, best_epoch_, n_epochs_, fit_time_, seed_, threshold_, offset_
        As for :class:`anoean.AnoEAN`. The history also records ``loss_xz``, ``loss_xx``
        and ``loss_zz``, the three discriminators' losses.

    Notes
    -----
    The original's early stopping watches the mean Dxx feature distance of *normal*
    validation rows (a reconstruction quality, not detection), is unusable on KDD (its
    ``get_valid`` returns None), and never restores the best checkpoint it saves. We stop on
    validation AUC-PR and restore the best epoch's weights, like every model here.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean.baselines import ALAD
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 5)).astype("float32")
    >>> det = ALAD(lr=1e-3, max_epochs=5, random_state=0, device="cpu").fit(X)
    >>> outliers = rng.normal(6, 1, size=(5, 5))
    >>> bool(det.anomaly_score(outliers).mean() > det.anomaly_score(X[:50]).mean())
    True
    """

    _groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "d": ("d_xz", "d_xx", "d_zz"),
        "g": ("generator",),
        "e": ("encoder",),
    }

    def _make_nets(self, in_shape: tuple[int, ...], latent_dim: int) -> dict[str, nn.Module]:
        if self.network == "mlp":
            p = in_shape[0]
            return {
                "encoder": MLPEncoder(p, latent_dim, slope=0.2),
                "generator": MLPGenerator(latent_dim, p),
                "d_xz": MLPJointDiscriminator(
                    p, latent_dim, slope=0.2, x_batch_norm=True, x_dropout=0.0, dropout=0.5
                ),
                "d_xx": PairDiscriminator(p, (128,)),
                "d_zz": PairDiscriminator(latent_dim, (32,)),
            }
        return {
            "encoder": BiGANConvEncoder(in_shape, latent_dim, spectral_norm=True),
            "generator": ConvGenerator(latent_dim, in_shape),
            "d_xz": ConvJointDiscriminator(in_shape, latent_dim, spectral_norm=True),
            "d_xx": ConvPairDiscriminator(in_shape),
            "d_zz": PairDiscriminator(latent_dim, (64, 32), spectral_norm=True),
        }

    def _discriminator_loss(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        E, G = nets["encoder"], nets["generator"]
        with torch.no_grad():
            z_enc, x_gen = E(x), G(z)
            x_rec, z_rec = G(z_enc), E(x_gen)
        l_enc, _ = nets["d_xz"](x, z_enc)
        l_gen, _ = nets["d_xz"](x_gen, z)
        loss_xz = neg_log_d(l_enc) + neg_log_1m_d(l_gen)
        x_real, _ = nets["d_xx"](x, x)
        x_fake, _ = nets["d_xx"](x, x_rec)
        loss_xx = neg_log_d(x_real) + neg_log_1m_d(x_fake)
        z_real, _ = nets["d_zz"](z, z)
        z_fake, _ = nets["d_zz"](z, z_rec)
        loss_zz = neg_log_d(z_real) + neg_log_1m_d(z_fake)
        parts = {"loss_xz": loss_xz, "loss_xx": loss_xx, "loss_zz": loss_zz}
        return loss_xz + loss_xx + loss_zz, parts

    def _generator_losses(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        E, G = nets["encoder"], nets["generator"]
        z_enc, x_gen = E(x), G(z)
        l_enc, _ = nets["d_xz"](x, z_enc)
        l_gen, _ = nets["d_xz"](x_gen, z)
        x_real, _ = nets["d_xx"](x, x)
        x_fake, _ = nets["d_xx"](x, G(z_enc))
        z_real, _ = nets["d_zz"](z, z)
        z_fake, _ = nets["d_zz"](z, E(x_gen))
        # the cycle terms flip the discriminators' labels, as the non-saturating GAN loss does
        cost_x = neg_log_1m_d(x_real) + neg_log_d(x_fake)
        cost_z = neg_log_1m_d(z_real) + neg_log_d(z_fake)
        cycle = cost_x + cost_z
        return {"g": neg_log_d(l_gen) + cycle, "e": neg_log_1m_d(l_enc) + cycle}

    @torch.no_grad()
    def _score_chunk(self, xs: torch.Tensor) -> torch.Tensor:
        rec = self.nets_["generator"](self.nets_["encoder"](xs))
        _, f_real = self.nets_["d_xx"](xs, xs)
        _, f_rec = self.nets_["d_xx"](xs, rec)
        return (f_real - f_rec).abs().sum(1)


__all__ = ["ALAD"]
