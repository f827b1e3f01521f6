"""EGBAD (Zenati et al., 2018, "Efficient GAN-based anomaly detection"): a BiGAN on normal
data, scored by reconstruction plus discriminator feature matching.

A BiGAN learns an encoder E and a generator G together: the discriminator D sees pairs
(x, E(x)) (labelled real) and (G(z), z) (labelled fake). As in the authors' code
(``bigan/run_kdd.py``): D minimises ``-log D(x, E(x)) - log(1 - D(G(z), z))``, G minimises
``-log D(G(z), z)`` and E minimises ``-log(1 - D(x, E(x)))``.

Score, with the feature-matching variant and alpha = 0.9 (the code's ``(1 - w) * gen_score +
w * dis_score`` with ``w = 0.1`` and L1 norms, ``--d 1``):

    A(x) = alpha * ||x - G(E(x))||_1 + (1 - alpha) * ||f(x, E(x)) - f(G(E(x)), E(x))||_1,

with f the discriminator's last hidden layer.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import Interval
from torch import nn

from anoean.models.gan import GANDetector
from anoean.nn.gan import (
    BiGANConvEncoder,
    ConvGenerator,
    ConvJointDiscriminator,
    MLPEncoder,
    MLPGenerator,
    MLPJointDiscriminator,
)
from anoean.nn.losses import neg_log_1m_d, neg_log_d


class EGBAD(GANDetector):
    """EGBAD: BiGAN-based anomaly detection (reconstruction + feature-matching score).

    Parameters
    ----------
    network : {"mlp", "conv"}, default="mlp"
        "mlp": the original KDD nets (E: p-64-d, LeakyReLU 0.1; G: d-64-128-p; D: x -> 128,
        z -> 128, joint 128 -> 1, dropout 0.2). "conv": the original MNIST nets (E: 3x3
        convolutions 32-64-128 then d; G: d-1024-(128, H/4, W/4), two transposed convolutions,
        tanh; D: two 4x4 convolutions on x, z -> 512, joint 1024 -> 1, dropout 0.5).
    latent_dim, batch_size, lr, max_epochs, patience, validation_fraction, scaling
        As for :class:`~anoean.baselines.AnoGAN` (originals' defaults: d = 32 / 200,
        batches of 50 / 100, Adam lr 1e-5 with beta1 0.5).
    alpha : float in [0, 1], default=0.9
        Weight of the reconstruction term in the score; 1 - alpha weighs the feature loss.
    contamination, target_false_alarm, random_state, device, verbose
        As for :class:`anoean.AnoEAN`.

    Attributes
    ----------
    nets_ : torch.nn.ModuleDict
        ``scaler``, ``encoder``, ``generator`` and ``discriminator``.
    history_, best_epoch_, n_epochs_, fit_time_, seed_, threshold_, offset_
        As for :class:`anoean.AnoEAN`.

    Notes
    -----
    EGBAD's adversarial training is unstable: the score can peak and then degrade as D wins.
    The original trains a fixed number of epochs and scores the final (EMA) weights; we stop
    early on validation AUC-PR and keep the best epoch's weights.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean.baselines import EGBAD
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 5)).astype("float32")
    >>> det = EGBAD(lr=1e-3, max_epochs=5, random_state=0, device="cpu").fit(X)
    >>> outliers = rng.normal(6, 1, size=(5, 5))
    >>> bool(det.anomaly_score(outliers).mean() > det.anomaly_score(X[:50]).mean())
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **GANDetector._parameter_constraints,
        "alpha": [Interval(Real, 0, 1, closed="both")],
    }
    _groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "d": ("discriminator",),
        "g": ("generator",),
        "e": ("encoder",),
    }

    def __init__(
        self,
        *,
        network: str = "mlp",
        latent_dim: int | None = None,
        batch_size: int | None = None,
        lr: float = 1e-5,
        max_epochs: int = 100,
        patience: int | None = 10,
        validation_fraction: float = 0.2,
        scaling: str = "auto",
        alpha: float = 0.9,
        contamination: float | None = None,
        target_false_alarm: float = 0.05,
        random_state: Any = None,
        device: str = "auto",
        verbose: int = 0,
    ) -> None:
        super().__init__(
            network=network,
            latent_dim=latent_dim,
            batch_size=batch_size,
            lr=lr,
            max_epochs=max_epochs,
            patience=patience,
            validation_fraction=validation_fraction,
            scaling=scaling,
            contamination=contamination,
            target_false_alarm=target_false_alarm,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )
        self.alpha = alpha

    def _make_nets(self, in_shape: tuple[int, ...], latent_dim: int) -> dict[str, nn.Module]:
        if self.network == "mlp":
            p = in_shape[0]
            return {
                "encoder": MLPEncoder(p, latent_dim, slope=0.1),
                "generator": MLPGenerator(latent_dim, p),
                "discriminator": MLPJointDiscriminator(
                    p, latent_dim, slope=0.1, x_batch_norm=False, x_dropout=0.2, dropout=0.2
                ),
            }
        return {
            "encoder": BiGANConvEncoder(in_shape, latent_dim),
            "generator": ConvGenerator(latent_dim, in_shape),
            "discriminator": ConvJointDiscriminator(in_shape, latent_dim),
        }

    def _discriminator_loss(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            z_enc, x_gen = nets["encoder"](x), nets["generator"](z)
        l_enc, _ = nets["discriminator"](x, z_enc)
        l_gen, _ = nets["discriminator"](x_gen, z)
        return neg_log_d(l_enc) + neg_log_1m_d(l_gen), {}

    def _generator_losses(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        l_enc, _ = nets["discriminator"](x, nets["encoder"](x))
        l_gen, _ = nets["discriminator"](nets["generator"](z), z)
        return {"g": neg_log_d(l_gen), "e": neg_log_1m_d(l_enc)}

    @torch.no_grad()
    def _score_chunk(self, xs: torch.Tensor) -> torch.Tensor:
        E, G, D = self.nets_["encoder"], self.nets_["generator"], self.nets_["discriminator"]
        z = E(xs)
        rec = G(z)
        _, f_real = D(xs, z)
        _, f_rec = D(rec, z)
        residual = (xs - rec).flatten(1).abs().sum(1)
        feature = (f_real - f_rec).abs().sum(1)
        return self.alpha * residual + (1.0 - self.alpha) * feature


__all__ = ["EGBAD"]
