"""AnoEAN: Anomaly detection with an Encoding Adversarial Network (Gherbi et al.).

An encoder E maps x to a small decision space R^d. A discriminator D tells N(0, I) samples
from codes. D minimises

    L_D = -E_z[log D(z)] - E_xn[log(1 - D(E(xn)))] - E_xa[log(1 - D(E(xa)))],

and E minimises

    L_E = -E_xn[log D(E(xn))] - E_xa[log(1 - D(E(xa)))],

so normal data is pushed into N(0, I) and known anomalies out of it. Training alternates one
D step (E frozen) and one E step (D frozen) per batch. The score is the Mahalanobis distance
of E(x) to N(mu, Sigma), both estimated on encoded normal validation data; only the encoder
is needed at inference.

Design choices where the paper is silent are documented on :class:`AnoEAN` and in
:mod:`anoean.training.loop` (batch composition) and :mod:`anoean.core.gaussian` (singular
covariance).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from anoean.core.gaussian import (
    MIN_CROSS_FIT_NORMALS,
    GaussianScorer,
    mahalanobis_torch,
    validation_aucpr,
)
from anoean.core.metrics import aucpr
from anoean.core.runtime import make_generators, resolve_device, resolve_seed
from anoean.core.splits import holdout_split, scaling_stats
from anoean.nn.blocks import MLP, ConvEncoder, Standardize, build
from anoean.nn.losses import anoean_discriminator_loss, anoean_encoder_loss
from anoean.training.loop import EpochBatches, TrainingDivergedError, train_loop
from anoean.training.neural import (
    INFERENCE_BATCH,
    NeuralDetector,
    check_scaling,
    finite_weights,
)

logger = logging.getLogger("anoean")

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
            self.body: nn.Module = MLP([int(in_shape[0]), *ENCODER_HIDDEN, latent_dim])
        else:
            self.body = ConvEncoder(in_shape, latent_dim, batch_norm=CONV_BATCH_NORM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.scaler(x))


class Discriminator(nn.Module):
    """MLP d-32-16-1 returning a logit (D = sigmoid(logit))."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.body = MLP([latent_dim, *DISCRIMINATOR_HIDDEN, 1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).squeeze(-1)


def make_step(
    encoder: nn.Module,
    disc: nn.Module,
    opt_e: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    Xn: torch.Tensor,
    Xa: torch.Tensor,
    generator: torch.Generator,
) -> Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
    """One AnoEAN training step on index batches: a D step (E frozen), then an E step (D frozen).

    The batch is encoded ONCE, with a graph. The D step uses the detached codes: E's weights
    do not change during the D step, so these are exactly the codes a separate no-grad
    forward would give. The E step then re-runs only the small D, with its updated weights,
    on the same codes and back-propagates through them into E. For the weights this is the
    plain alternation "encode under no_grad, update D; encode again with grad, update E", bit
    for bit (``tests/test_anoean.py::test_step_reuses_codes_bit_identically``), minus one
    encoder forward per step. The one difference is in batch-norm running statistics: the
    plain form, encoding each batch twice in training mode, folded every batch into them
    twice; here each batch counts once. (Training-mode outputs use the batch's own
    statistics, so the weights are unaffected either way.)
    """
    d_params = list(disc.parameters())
    dev = Xn.device

    def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
        xn, xa = Xn[idx_n], Xa[idx_a]
        n_n = xn.shape[0]
        x = torch.cat([xn, xa]) if xa.shape[0] else xn
        codes = encoder(x)
        # D step, E frozen: detached codes carry no gradient into E
        z = torch.randn(n_n, codes.shape[1], generator=generator, device=dev)
        logits = disc(torch.cat([z, codes.detach()]))
        loss_d = anoean_discriminator_loss(logits[:n_n], logits[n_n : 2 * n_n], logits[2 * n_n :])
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # E step, D frozen: gradients flow through the updated D into E, D's weights get none
        for p in d_params:
            p.requires_grad_(False)
        logits = disc(codes)
        loss_e = anoean_encoder_loss(logits[:n_n], logits[n_n:])
        opt_e.zero_grad(set_to_none=True)
        loss_e.backward()
        opt_e.step()
        for p in d_params:
            p.requires_grad_(True)
        return {"loss_d": loss_d.detach(), "loss_e": loss_e.detach()}

    return step


class AnoEAN(TransformerMixin, NeuralDetector):
    """Semi-supervised anomaly detector with an Encoding Adversarial Network.

    Parameters
    ----------
    latent_dim : int, default=16
        Size d of the decision space. 16 is our default because the score is a Mahalanobis
        distance whose mu and Sigma are estimated from the validation normals (about a
        thousand rows in the paper's protocol): d(d+3)/2 = 152 parameters are estimated
        reliably from that many codes, while d is still large enough that distinct anomaly
        kinds can be pushed out of N(0, I) in different directions. Much larger d makes the
        covariance estimate noisy; much smaller d limits what the encoder can separate.
    encoder : {"mlp", "conv"}, default="mlp"
        "mlp": 128-64-32-d for tables (n, p). "conv": the paper's MNIST encoder (4x4 stride-2
        convolutions with 32, 64 and 128 filters, then d) for images (n, 1, H, W) or (n, H, W).
    batch_size : int, default=200
        Normal rows per step (the paper's 200). See :mod:`anoean.training.loop` for how anomalies
        are added to each step.
    lr : float, default=1e-3
        Adam learning rate for both E and D (the paper's value).
    max_epochs : int, default=100
        Upper bound on epochs; one epoch is one pass over the normal training rows.
    patience : int or None, default=10
        Early stopping: stop after this many epochs without a better validation AUC-PR. The
        encoder kept is the one of the best epoch. None disables early stopping.
    validation_fraction : float, default=0.2
        Share of each class held out for validation when ``X_val`` is not given.
    scaling : {"auto", "standard", "minmax", "none"}, default="auto"
        Input scaling fitted on the training rows and stored inside the encoder. "auto" is
        "standard" for tables (so raw sensor or flow features of any range work as they are)
        and "none" for images.
    contamination : float in (0, 0.5] or None, default=None
        If set, the threshold flags this fraction of the data passed to ``fit``.
    target_false_alarm : float in (0, 1), default=0.05
        Used when ``contamination`` is None: the threshold flags this fraction of the
        validation normals (the false-alarm budget).
    random_state : int, RandomState, Generator or None, default=None
        Seeds every draw (initialisation, batches, prior samples, hold-out split).
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where training and scoring run. "auto" picks CUDA when available.
    verbose : int, default=0
        0 is silent; 1 shows a progress bar on stderr.
    validation_score : {"in_sample", "cross_fit"}, default="in_sample"
        The validation AUC-PR behind early stopping and :meth:`validation_aucpr` (which
        hyperparameter selection uses). "in_sample" is the paper's rule: mu and Sigma fitted
        on the validation normals, which are then scored. It is optimistic, increasingly so
        with ``latent_dim``. "cross_fit" fits them on one half of the validation normals
        and scores the other half (and the anomalies), both ways
        (:func:`anoean.core.gaussian.validation_aucpr`). The final mu and Sigma are fitted on all
        validation normals either way.
    gaussian_fit : {"validation", "train"}, default="validation"
        Which encoded normals mu and Sigma are estimated on. "validation" is the paper's
        rule. "train" uses the normal *training* rows instead: usually many more codes than
        the validation normals (5,000 against 400 in the MNIST protocol), and the validation
        rows then stay held out, so the per-epoch validation AUC-PR, the threshold and
        :meth:`validation_aucpr` are all computed on rows the Gaussian never saw. The
        encoder was trained on those rows, so their codes can sit tighter than new data's;
        docs/results.md (finding 3) measures the trade on validation data. Cannot be
        combined with ``validation_score="cross_fit"``, whose purpose (a held-out
        criterion) "train" already serves.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        The trained encoder E (with its input scaling).
    discriminator_ : torch.nn.Module
        The discriminator D at the end of training (not needed to score).
    gaussian_ : GaussianScorer
        mu, Sigma and the whitening matrix of the encoded validation normals (training
        normals with ``gaussian_fit="train"``).
    history_ : list of dict
        Per epoch: ``loss_d``, ``loss_e``, ``val_aucpr`` (None without validation anomalies)
        and ``time_s``.
    best_epoch_ : int
        Epoch whose encoder was kept.
    threshold_, offset_ : float
        Decision threshold on ``anomaly_score`` and its scikit-learn offset.
    seed_ : int
        The seed actually used.

    Notes
    -----
    *No labelled anomalies.* With ``y`` all zeros (or None), L_E keeps only its first term
    and L_D its first two: the encoder simply learns to map normal data onto N(0, I). The
    validation AUC-PR is then undefined, so early stopping is off, all ``max_epochs`` run and
    the final encoder is kept.

    *Validation.* When ``X_val`` is None a stratified ``validation_fraction`` of the data is
    held out (:func:`anoean.core.splits.holdout_split`). mu and Sigma are always estimated on
    the encoded *normal* validation rows, with an eigenvalue floor guarding against a singular
    covariance (:mod:`anoean.core.gaussian`).

    Examples
    --------
    >>> import numpy as np
    >>> from anoean import AnoEAN
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(400, 5)), rng.normal(4, 1, size=(40, 5))])
    >>> y = np.r_[np.zeros(400), np.ones(40)]
    >>> det = AnoEAN(latent_dim=4, max_epochs=5, random_state=0, device="cpu").fit(X, y)
    >>> scores = det.anomaly_score(X)
    >>> bool(scores[y == 1].mean() > scores[y == 0].mean())
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **NeuralDetector._parameter_constraints,
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "encoder": [StrOptions({"mlp", "conv"})],
        "scaling": [StrOptions({"auto", "standard", "minmax", "none"})],
        "validation_score": [StrOptions({"in_sample", "cross_fit"})],
        "gaussian_fit": [StrOptions({"validation", "train"})],
    }
    _arch_param: ClassVar[str] = "encoder"

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        encoder: str = "mlp",
        batch_size: int = 200,
        lr: float = 1e-3,
        max_epochs: int = 100,
        patience: int | None = 10,
        validation_fraction: float = 0.2,
        scaling: str = "auto",
        contamination: float | None = None,
        target_false_alarm: float = 0.05,
        random_state: Any = None,
        device: str = "auto",
        verbose: int = 0,
        validation_score: str = "in_sample",
        gaussian_fit: str = "validation",
    ) -> None:
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.batch_size = batch_size
        self.lr = lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scaling = scaling
        self.contamination = contamination
        self.target_false_alarm = target_false_alarm
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.validation_score = validation_score
        self.gaussian_fit = gaussian_fit

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the encoder runs in float32
        return tags

    # ------------------------------------------------------------------ building
    def _build(self, generator: torch.Generator) -> tuple[Encoder, Discriminator]:
        shape, d, kind = self.input_shape_, self.latent_dim, self.encoder
        enc = build(lambda: Encoder(shape, d, kind), generator, self.device_)
        disc = build(lambda: Discriminator(d), generator, self.device_)
        return enc, disc  # type: ignore[return-value]

    # ------------------------------------------------------------------- fitting
    def _fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        t_start = time.perf_counter()
        self.seed_ = resolve_seed(self.random_state)
        self.device_ = resolve_device(self.device)
        rng, _ = make_generators(self.seed_)
        init_gen = torch.Generator().manual_seed(self.seed_)
        train_gen = torch.Generator(device=self.device_).manual_seed(self.seed_ + 1)

        X_all = X
        # the row numbers to report for the training and validation rows
        train_rows, val_rows, val_name = np.arange(X.shape[0]), None, "X_val"
        if X_val is None:
            tr, va = holdout_split(y, self.validation_fraction, rng)
            X, y, X_val, y_val = X[tr], y[tr], X[va], y[va]
            train_rows, val_rows, val_name = tr, va, "X (training data)"
        assert y_val is not None
        if val_rows is None:
            val_rows = np.arange(X_val.shape[0])

        encoder, disc = self._build(init_gen)
        shift, scale = scaling_stats(X, self._resolve_scaling())
        check_scaling(X, shift, scale, train_rows, "X (training data)")
        encoder.scaler.set(shift, scale)
        if self.encoder == "conv":
            # NHWC weights make oneDNN's CPU convolutions (forward and backward) about 20%
            # faster here (docs/benchmarks/anoean_conv.md); set before the optimisers see the
            # parameters, and undone after training so saved weights are plain C-order arrays
            # (the ignore: torch's stubs for Module.to omit the memory_format keyword)
            encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

        dev = self.device_
        Xn = torch.from_numpy(X[y == 0]).to(dev)
        Xa = torch.from_numpy(X[y == 1]).to(dev)
        Xv = torch.from_numpy(X_val).to(dev)
        has_val_anomalies = bool((y_val == 1).any())
        betas = ADAM_BETAS[self.encoder]
        opt_e = torch.optim.Adam(encoder.parameters(), lr=self.lr, betas=betas)
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr, betas=betas)

        step = make_step(encoder, disc, opt_e, opt_d, Xn, Xa, train_gen)

        cross_fit = self.validation_score == "cross_fit"
        fit_on_train = self.gaussian_fit == "train"
        if cross_fit and fit_on_train:
            raise ValueError(
                "validation_score='cross_fit' applies to gaussian_fit='validation' only: with "
                "gaussian_fit='train' the validation rows are already held out"
            )
        if fit_on_train and Xn.shape[0] < 2:
            raise ValueError(
                f"gaussian_fit='train' needs at least 2 normal training rows; got {Xn.shape[0]}"
            )
        n_val_normal = int((y_val == 0).sum())
        if cross_fit and has_val_anomalies and n_val_normal < MIN_CROSS_FIT_NORMALS:
            # checked before training, not after the first epoch
            raise ValueError(
                f"validation_score='cross_fit' needs at least {MIN_CROSS_FIT_NORMALS} normal "
                f"validation rows; got {n_val_normal}"
            )

        @torch.no_grad()
        def evaluate() -> float | None:
            if not has_val_anomalies:
                return None
            codes = encoder(Xv).double().cpu().numpy()
            fit_codes = None
            if fit_on_train:
                fit_codes = torch.cat([encoder(c) for c in Xn.split(INFERENCE_BATCH)])
                fit_codes = fit_codes.double().cpu().numpy()
            if not (
                np.isfinite(codes).all() and (fit_codes is None or np.isfinite(fit_codes).all())
            ):
                return float("nan")  # diverged weights: train_loop stops and restores
            return validation_aucpr(
                codes, y_val, cross_fit=cross_fit, seed=self.seed_, fit_codes=fit_codes
            )

        batches = EpochBatches(int(Xn.shape[0]), int(Xa.shape[0]), self.batch_size, train_gen, dev)
        try:
            result = train_loop(
                step=step,
                batches=batches,
                evaluate=evaluate,
                keep={"encoder": encoder},
                max_epochs=self.max_epochs,
                patience=self.patience,
                verbose=self.verbose,
                desc="AnoEAN",
            )
        except TrainingDivergedError:
            # finite weights whose validation codes are not: a validation row too large for
            # the float32 arithmetic, not a learning rate problem; name that row
            if has_val_anomalies and finite_weights(encoder):
                self.encoder_ = encoder.eval()
                codes = self._batched(encoder, X_val, (self.latent_dim,))
                self._check_rows_finite(X_val, codes, val_rows, val_name)
            raise
        encoder.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        encoder.eval()
        disc.eval()
        self.encoder_, self.discriminator_ = encoder, disc
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_epochs_ = len(result.history)

        if fit_on_train:
            fit_rows, fit_index, fit_name = X[y == 0], train_rows[y == 0], "X (training data)"
        else:
            fit_rows, fit_index, fit_name = X_val[y_val == 0], val_rows[y_val == 0], val_name
        fit_codes = self._batched(self.encoder_, fit_rows, (self.latent_dim,))
        # a code that is not finite would make mu and Sigma NaN: name its row instead
        self._check_rows_finite(fit_rows, fit_codes, fit_index, fit_name)
        self.gaussian_ = GaussianScorer.fit(fit_codes)
        self._set_scoring_tensors()
        if self.gaussian_.n_floored:
            logger.info("covariance had %d eigenvalue(s) floored", self.gaussian_.n_floored)
        self.fit_time_ = time.perf_counter() - t_start
        val_scores = self._anomaly_score(X_val)
        train_scores = self._anomaly_score(X_all)
        return val_scores[y_val == 0], train_scores

    def validation_aucpr(self, X_val: Any, y_val: Any) -> float:
        """The validation AUC-PR by this model's ``validation_score`` rule: the criterion
        :func:`anoean.experiments.search.select_hyperparameters` compares configurations on.

        "in_sample": the AUC-PR of :meth:`anomaly_score` on ``X_val`` (whose normals, for
        the validation set given to ``fit``, are the ones mu and Sigma were fitted on, unless
        ``gaussian_fit="train"``, where they are held out).
        "cross_fit": :func:`anoean.core.gaussian.validation_aucpr` on the codes of ``X_val``.
        """
        from anoean.core.detector import validate_labels

        check_is_fitted(self)
        X_val = self._validate_X(X_val, reset=False, name="X_val")
        y_arr = validate_labels(y_val, X_val.shape[0], "y_val")
        if self.validation_score != "cross_fit":
            return aucpr(y_arr, self._anomaly_score(X_val))
        codes = self._batched(self.encoder_, X_val, (self.latent_dim,))
        return validation_aucpr(codes, y_arr, cross_fit=True, seed=self.seed_)

    def _set_scoring_tensors(self) -> None:
        self._mu_t, self._whiten_t = self.gaussian_.torch_params(self.device_)

    # ------------------------------------------------------------------- scoring
    def _score_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return mahalanobis_torch(self.encoder_(x), self._mu_t, self._whiten_t)

    def _anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._batched(self._score_tensor, X, dtype=np.float64)

    def transform(self, X: Any) -> np.ndarray:
        """The latent codes E(x), shape (n, latent_dim)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._batched(self.encoder_, X, (self.latent_dim,))

    # --------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "seed_": self.seed_,
            "history_": self.history_,
            "best_epoch_": self.best_epoch_,
            "n_epochs_": self.n_epochs_,
            "fit_time_": self.fit_time_,
        }
        arrays = self._module_arrays("encoder", self.encoder_)
        arrays.update(self._module_arrays("discriminator", self.discriminator_))
        arrays["gaussian.mu"] = self.gaussian_.mu
        arrays["gaussian.cov"] = self.gaussian_.cov
        arrays["gaussian.whiten"] = self.gaussian_.whiten
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.device_ = resolve_device(self.device)
        self.seed_ = int(state["seed_"])
        self.history_ = list(state["history_"])
        self.best_epoch_ = int(state["best_epoch_"])
        self.n_epochs_ = int(state["n_epochs_"])
        self.fit_time_ = float(state["fit_time_"])
        enc, disc = self._build(torch.Generator().manual_seed(0))
        self._load_module(enc, "encoder", arrays)
        self._load_module(disc, "discriminator", arrays)
        self.encoder_, self.discriminator_ = enc.eval(), disc.eval()
        d = self.latent_dim
        mu, cov, whiten = (arrays[f"gaussian.{k}"] for k in ("mu", "cov", "whiten"))
        if mu.shape != (d,) or cov.shape != (d, d) or whiten.shape != (d, d):
            raise ValueError(f"Gaussian parameters do not have latent_dim={d}")
        self.gaussian_ = GaussianScorer(mu=mu, cov=cov, whiten=whiten)
        self._set_scoring_tensors()
