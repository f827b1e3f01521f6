"""AnoGAN (Schlegl et al., IPMI 2017): a GAN on normal data, scored by inverting the
generator.

Training is a plain GAN on normal rows: D minimises ``-log D(x) - log(1 - D(G(z)))``, G the
non-saturating ``-log D(G(z))``. At test time, for each row x a latent z is searched by
gradient descent on

    L(z) = (1 - lambda) * ||x - G(z)||_1 + lambda * ||f(x) - f(G(z))||_1,

with f the discriminator's last hidden layer (feature matching) and lambda = 0.1; the score
is L at the end of the search.

The search is vectorised: one Adam optimiser over a (rows, latent_dim) tensor, minimising
the *sum* of the per-row losses. Each row's z only enters its own loss (G and D run in eval
mode, so batch norm uses its running statistics and rows do not interact), and Adam's update
is element-wise, so every row follows exactly the trajectory it would follow alone: batching
changes the cost, not the result.

Search schedule, as in the authors' code (``gan/run_kdd.py``, ``gan/run_mnist.py`` of
houssamzenati/Efficient-GAN-Anomaly-Detection): 500 Adam steps with a piecewise-constant
learning rate 0.01 / 0.001 / 0.0005, switching at steps 300 and 400 for KDD (``network="mlp"``)
and 200 and 300 for MNIST (``network="conv"``). Schlegl et al. also used 500 iterations.
With another ``n_search_iter`` the switch points keep the same fractions of the search.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from torch import nn

from anoean.models.gan import GANDetector
from anoean.nn.gan import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator
from anoean.nn.losses import neg_log_1m_d, neg_log_d

#: learning rates of the latent search and where they switch, as fractions of the search
SEARCH_LRS = (0.01, 0.001, 0.0005)
SEARCH_SWITCH = {"mlp": (0.6, 0.8), "conv": (0.4, 0.6)}


class AnoGAN(GANDetector):
    """AnoGAN: a GAN trained on normal data; the score inverts the generator.

    Parameters
    ----------
    network : {"mlp", "conv"}, default="mlp"
        "mlp": the original KDD nets (G: d-64-128-p; D: p-256-128-128-1, dropout 0.2) for
        tables (n, p). "conv": the original MNIST DCGAN (G: d-1024-(128, H/4, W/4), two 4x4
        transposed convolutions, tanh; D: two 4x4 stride-2 convolutions, 1024 units) for
        images (n, H, W) or (n, C, H, W).
    latent_dim : int or None, default=None
        Size of z. None: the original's (32 for "mlp", 200 for "conv").
    batch_size : int or None, default=None
        Normal rows per step. None: the original's (50 for "mlp", 100 for "conv").
    lr : float, default=1e-5
        Adam learning rate of G and D (beta1 = 0.5), the original's value.
    max_epochs, patience : int, default=100, 10
        Epoch budget and early stopping on validation AUC-PR (best epoch's weights kept).
        Without anomalies in the validation set all epochs run.
    validation_fraction : float, default=0.2
        Share of each class held out when ``X_val`` is not given.
    scaling : {"auto", "standard", "minmax", "symmetric", "none"}, default="auto"
        "auto": "standard" for tables, "symmetric" (global range to [-1, 1], matching the
        tanh generator) for images. Fitted on the normal training rows.
    feature_weight : float in [0, 1], default=0.1
        lambda, the weight of the discriminator feature loss in the score.
    n_search_iter : int, default=500
        Adam steps of the latent search (the original's 500). 0 scores at the start point.
    val_search_iter : int or None, default=None
        Adam steps of the latent search in the per-epoch early-stopping check on the
        validation set. None: ``n_search_iter``. The search runs on the whole validation set
        after every epoch, which makes it most of AnoGAN's training cost; a shorter search
        (the same schedule, compressed) is a cheaper proxy for the same score. The threshold,
        the final validation score and every call to :meth:`anomaly_score` always use
        ``n_search_iter``.
    search_batch_size : int, default=1024
        Rows searched together (memory bound only: results do not depend on it).
    contamination, target_false_alarm, random_state, device, verbose
        As for :class:`anoean.AnoEAN`.

    Attributes
    ----------
    nets_ : torch.nn.ModuleDict
        ``scaler``, ``generator``, ``discriminator`` and ``z_start`` (the search start).
    history_, best_epoch_, n_epochs_, fit_time_, seed_, threshold_, offset_
        As for :class:`anoean.AnoEAN`.

    Notes
    -----
    The original draws a fresh truncated-normal start z for every test batch. We draw one
    truncated-normal start at fit time (from the seed) and start every row from it, so a row's
    score does not depend on which other rows are scored with it, on their order, or on the
    call: scores are a deterministic function of the row and the fitted model.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean.baselines import AnoGAN
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 5)).astype("float32")
    >>> det = AnoGAN(lr=1e-3, max_epochs=3, n_search_iter=20, random_state=0, device="cpu")
    >>> det = det.fit(X)
    >>> outliers = rng.normal(6, 1, size=(5, 5))
    >>> bool(det.anomaly_score(outliers).mean() > det.anomaly_score(X[:50]).mean())
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **GANDetector._parameter_constraints,
        "feature_weight": [Interval(Real, 0, 1, closed="both")],
        "n_search_iter": [Interval(Integral, 0, None, closed="left")],
        "val_search_iter": [Interval(Integral, 0, None, closed="left"), None],
        "search_batch_size": [Interval(Integral, 1, None, closed="left")],
    }
    _groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "d": ("discriminator",),
        "g": ("generator",),
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
        feature_weight: float = 0.1,
        n_search_iter: int = 500,
        val_search_iter: int | None = None,
        search_batch_size: int = 1024,
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
        self.feature_weight = feature_weight
        self.n_search_iter = n_search_iter
        self.val_search_iter = val_search_iter
        self.search_batch_size = search_batch_size

    def _make_nets(self, in_shape: tuple[int, ...], latent_dim: int) -> dict[str, nn.Module]:
        if self.network == "mlp":
            g: nn.Module = MLPGenerator(latent_dim, in_shape[0])
            d: nn.Module = MLPDiscriminator(in_shape[0])
        else:
            g, d = ConvGenerator(latent_dim, in_shape), ConvDiscriminator(in_shape)
        return {"generator": g, "discriminator": d, "z_start": _LatentStart(latent_dim)}

    def _build_nets(self, generator: torch.Generator) -> nn.ModuleDict:
        nets = super()._build_nets(generator)
        with torch.no_grad():
            # the original initialises z with tf.truncated_normal_initializer: N(0, 1) cut at 2 sd
            nn.init.trunc_normal_(_start(nets), generator=generator)
        return nets

    # ------------------------------------------------------------------ losses
    def _discriminator_loss(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            fake = nets["generator"](z)
        real_logits, _ = nets["discriminator"](x)
        fake_logits, _ = nets["discriminator"](fake)
        return neg_log_d(real_logits) + neg_log_1m_d(fake_logits), {}

    def _generator_losses(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        fake_logits, _ = nets["discriminator"](nets["generator"](z))
        return {"g": neg_log_d(fake_logits)}

    # ----------------------------------------------------------------- scoring
    def _row_losses(
        self, G: nn.Module, D: nn.Module, x: torch.Tensor, f_x: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        g = G(z)
        _, f_g = D(g)
        residual = (x - g).flatten(1).abs().sum(1)
        feature = (f_x - f_g).abs().sum(1)
        lam = self.feature_weight
        return (1.0 - lam) * residual + lam * feature

    def _score_chunk(self, xs: torch.Tensor, n_iter: int | None = None) -> torch.Tensor:
        """Latent search for a chunk of scaled rows, ``search_batch_size`` rows at a time."""
        n_iter = self.n_search_iter if n_iter is None else n_iter
        out = torch.empty(xs.shape[0], device=xs.device)
        b = self.search_batch_size
        for s in range(0, xs.shape[0], b):
            out[s : s + b] = self._search(xs[s : s + b], n_iter)
        return out

    def _validation_scores(self, xs: torch.Tensor) -> np.ndarray:
        n_iter = self.val_search_iter
        if n_iter is None:
            return self._scores_of_scaled(xs)
        return self._scores_of_scaled(xs, lambda chunk: self._score_chunk(chunk, n_iter))

    def _chunk(self) -> int:
        return max(self.search_batch_size, 1)

    def _search(self, x: torch.Tensor, n_iter: int) -> torch.Tensor:
        G, D = self.nets_["generator"], self.nets_["discriminator"]
        was_training = G.training
        G.eval()
        D.eval()
        frozen = [p for p in (*G.parameters(), *D.parameters()) if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                x = x.clone()  # a normal tensor, in case the caller made it in inference mode
                with torch.no_grad():
                    _, f_x = D(x)
                z = _start(self.nets_).detach().expand(x.shape[0], -1).clone()
                z.requires_grad_(True)
                opt = torch.optim.Adam([z], lr=SEARCH_LRS[0])
                bounds = [round(f * n_iter) for f in SEARCH_SWITCH[self.network]]
                for it in range(n_iter):
                    lr = SEARCH_LRS[sum(it >= b for b in bounds)]
                    for group in opt.param_groups:
                        group["lr"] = lr
                    loss = self._row_losses(G, D, x, f_x, z).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    return self._row_losses(G, D, x, f_x, z)
        finally:
            for p in frozen:
                p.requires_grad_(True)
            if was_training:
                G.train()
                D.train()


class _LatentStart(nn.Module):
    """Holds the latent search's start point as a buffer, so it is saved with the weights."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("z", torch.zeros(latent_dim))

    z: torch.Tensor

    def spec(self) -> dict[str, Any]:
        """Its entry in the model's architecture (:func:`anoean.nn.blocks.describe`)."""
        return {"kind": "latent_start", "latent_dim": int(self.z.shape[0])}


def _start(nets: nn.ModuleDict) -> torch.Tensor:
    holder = nets["z_start"]
    assert isinstance(holder, _LatentStart)
    return holder.z


__all__ = ["AnoGAN"]
