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
from collections.abc import Callable
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
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
from anoean.models.anoean.nets import (  # noqa: F401  (re-exported: the constants, make_step)
    ADAM_BETAS,
    CONV_BATCH_NORM,
    DISCRIMINATOR_HIDDEN,
    ENCODER_HIDDEN,
    Discriminator,
    Encoder,
    make_generated,
    make_step,
)
from anoean.nn.blocks import build
from anoean.nn.generator import make_generator
from anoean.training import distributed
from anoean.training.adversarial import Group, Losses
from anoean.training.neural import (
    INFERENCE_BATCH,
    FitData,
    NeuralDetector,
    with_corrupted_copies,
)

logger = logging.getLogger("anoean")


class AnoEAN(ClassNamePrefixFeaturesOutMixin, TransformerMixin, NeuralDetector):
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
    generate_anomalies : bool or "auto", default=False
        Train a learned anomaly generator G against E and D (the paper's future work,
        :mod:`anoean.nn.generator`): its samples, kept on the fence of N(0, I) in the latent
        frame and off the normal data, join the anomaly terms of L_D and L_E. False is the
        paper's method; True always trains G; "auto" trains it when ``y`` holds no labelled
        anomaly. G is used in training only: it is not saved and scoring never needs it.
        Without labelled validation anomalies, early stopping then uses the AUC-PR of the
        validation normals against corrupted copies of them
        (:func:`anoean.training.neural.corrupted_normals`), computed from validation normals
        only.

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
    generator_used_ : bool
        Whether the anomaly generator trained (``generate_anomalies``).

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
        "generate_anomalies": ["boolean", StrOptions({"auto"})],
    }
    _arch_param: ClassVar[str] = "encoder"
    _distributed_training: ClassVar[bool] = True

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
        generate_anomalies: bool | str = False,
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
        self.generate_anomalies = generate_anomalies

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the encoder runs in float32
        return tags

    # ------------------------------------------------------------------ building
    def _build_nets(self, generator: torch.Generator) -> nn.ModuleDict:
        shape, d, kind = self.input_shape_, self.latent_dim, self.encoder
        enc = build(lambda: Encoder(shape, d, kind), generator, self.device_)
        disc = build(lambda: Discriminator(d), generator, self.device_)
        nets = nn.ModuleDict({"encoder": enc, "discriminator": disc})
        if self.generator_used_:
            nets["generator"] = build(lambda: make_generator(shape), generator, self.device_)
        return nets

    def _architecture(self) -> dict[str, Any]:
        enc, disc = self.encoder_, self.discriminator_
        assert isinstance(enc, Encoder) and isinstance(disc, Discriminator)
        # the prefixes are the arrays' names in the saved weights (_state_arrays)
        return {"encoder": enc.spec("encoder"), "discriminator": disc.spec("discriminator")}

    # ------------------------------------------------------------------- fitting
    # the hooks of the fit template (anoean.training.neural.NeuralDetector._fit)
    def _check_data(self, data: FitData) -> None:
        self.generator_used_ = uses_generator(self.generate_anomalies, data)
        cross_fit = self.validation_score == "cross_fit"
        fit_on_train = self.gaussian_fit == "train"
        if cross_fit and fit_on_train:
            raise ValueError(
                "validation_score='cross_fit' applies to gaussian_fit='validation' only: with "
                "gaussian_fit='train' the validation rows are already held out"
            )
        n_normal = int((data.y == 0).sum())
        if fit_on_train and n_normal < 2:
            raise ValueError(
                f"gaussian_fit='train' needs at least 2 normal training rows; got {n_normal}"
            )
        n_val_normal = int((data.y_val == 0).sum())
        if cross_fit and data.has_val_anomalies and n_val_normal < MIN_CROSS_FIT_NORMALS:
            raise ValueError(
                f"validation_score='cross_fit' needs at least {MIN_CROSS_FIT_NORMALS} normal "
                f"validation rows; got {n_val_normal}"
            )

    def _scaler(self, nets: nn.ModuleDict) -> Any:
        return nets["encoder"].scaler

    def _prepare_nets(self, nets: nn.ModuleDict) -> None:
        if self.encoder == "conv":
            # NHWC weights make oneDNN's CPU convolutions (forward and backward) about 20%
            # faster here (docs/benchmarks/anoean_conv.md); set before the optimisers see the
            # parameters, and undone after training so saved weights are plain C-order arrays
            # (the ignore: torch's stubs for Module.to omit the memory_format keyword)
            nets["encoder"].to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _param_groups(self, nets: nn.ModuleDict) -> dict[str, list[nn.Parameter]]:
        groups = {
            "d": list(nets["discriminator"].parameters()),
            "e": list(nets["encoder"].parameters()),
        }
        if "generator" in nets:
            groups["g"] = list(nets["generator"].parameters())
        return groups

    def _adam_betas(self) -> tuple[float, float]:
        return ADAM_BETAS[self.encoder]

    def _make_step(
        self,
        nets: nn.ModuleDict,
        data: FitData,
        groups: dict[str, Group],
        generator: torch.Generator,
    ) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
        enc, disc = nets["encoder"], nets["discriminator"]
        opt_e, opt_d = groups["e"].optimizer, groups["d"].optimizer
        generated = None
        if "generator" in nets:
            assert isinstance(enc, Encoder)
            g_net, n_batch = nets["generator"], self.batch_size
            generated = make_generated(groups["g"], g_net, enc.scaler, data.Xn, n_batch, generator)
        return make_step(enc, disc, opt_e, opt_d, data.Xn, data.Xa, generator, generated)

    def _make_evaluate(self, nets: nn.ModuleDict, data: FitData) -> Callable[[], float | None]:
        encoder, Xn, Xv, y_val = nets["encoder"], data.Xn, data.Xv, data.y_val
        cross_fit = self.validation_score == "cross_fit"
        fit_on_train = self.gaussian_fit == "train"
        has_val_anomalies = data.has_val_anomalies
        if self.generator_used_ and not has_val_anomalies:
            # no labelled validation anomaly: the validation normals against corrupted
            # copies of them (anoean.training.neural.corrupted_normals)
            Xv, y_val = pseudo_validation(data, self.seed_, self.device_)
            has_val_anomalies = bool((y_val == 1).any())

        @torch.no_grad()
        def evaluate() -> float | None:
            if not has_val_anomalies:
                return None
            codes = encoder(Xv).double().cpu().numpy()
            fit_codes: np.ndarray | None = None
            if fit_on_train:
                fit_t = torch.cat([encoder(c) for c in Xn.split(INFERENCE_BATCH)])
                fit_codes = fit_t.double().cpu().numpy()
            if not (
                np.isfinite(codes).all() and (fit_codes is None or np.isfinite(fit_codes).all())
            ):
                return float("nan")  # diverged weights: train_loop stops and restores
            return validation_aucpr(
                codes, y_val, cross_fit=cross_fit, seed=self.seed_, fit_codes=fit_codes
            )

        return evaluate

    def _kept(self, nets: nn.ModuleDict) -> dict[str, nn.Module]:
        return {"encoder": nets["encoder"]}

    def _name_unscorable_validation_row(self, nets: nn.ModuleDict, data: FitData) -> None:
        self.encoder_ = nets["encoder"].eval()
        codes = self._batched(self.encoder_, data.X_val, (self.latent_dim,))
        self._check_rows_finite(data.X_val, codes, data.val_rows, data.val_name)

    def _set_trained(self, nets: nn.ModuleDict) -> None:
        encoder, disc = nets["encoder"], nets["discriminator"]
        encoder.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        self.encoder_, self.discriminator_ = encoder.eval(), disc.eval()

    def _after_training(self, data: FitData) -> None:
        """The Gaussian of the encoded normals (validation, or training with
        ``gaussian_fit="train"``)."""
        if self.gaussian_fit == "train":
            normal = data.y == 0
            fit_rows, fit_index, fit_name = (
                data.X[normal],
                data.train_rows[normal],
                "X (training data)",
            )
        else:
            normal = data.y_val == 0
            fit_rows, fit_index, fit_name = data.X_val[normal], data.val_rows[normal], data.val_name
        # in a distributed run each rank encodes its share of the rows, and mu and Sigma are
        # all-reduced from the shares' moments (anoean.training.distributed.moments)
        mine = distributed.shard(fit_rows.shape[0])
        if mine.size < fit_rows.shape[0]:
            fit_rows, fit_index = fit_rows[mine], fit_index[mine]
        fit_codes = self._batched(self.encoder_, fit_rows, (self.latent_dim,))
        # a code that is not finite would make mu and Sigma NaN: name its row instead
        self._check_rows_finite(fit_rows, fit_codes, fit_index, fit_name)
        if distributed.current() is None:
            self.gaussian_ = GaussianScorer.fit(fit_codes)
        else:
            self.gaussian_ = GaussianScorer.from_moments(*distributed.moments(fit_codes))
        self._set_scoring_tensors()
        if self.gaussian_.n_floored:
            logger.info("covariance had %d eigenvalue(s) floored", self.gaussian_.n_floored)

    def validation_aucpr(self, X_val: Any, y_val: Any) -> float:
        """The validation AUC-PR by this model's ``validation_score`` rule: the criterion
        :func:`anoean.experiments.search.select_hyperparameters` compares configurations on.

        "in_sample": the AUC-PR of :meth:`anomaly_score` on ``X_val`` (whose normals, for
        the validation set given to ``fit``, are the ones mu and Sigma were fitted on, unless
        ``gaussian_fit="train"``, where they are held out).
        "cross_fit": :func:`anoean.core.gaussian.validation_aucpr` on the codes of ``X_val``.
        """
        from anoean.core.validation import validate_labels

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
    def _score_torch(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self._score_tensor

    def _score_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return mahalanobis_torch(self.encoder_(x), self._mu_t, self._whiten_t)

    def _anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._batched(self._score_tensor, X, dtype=np.float64)

    @property
    def _n_features_out(self) -> int:
        """Columns of :meth:`transform`: ``get_feature_names_out`` names them "anoean0" to
        "anoean{d-1}", and ``set_output(transform="pandas")`` uses those names."""
        return int(self.latent_dim)

    def transform(self, X: Any) -> np.ndarray:
        """The latent codes E(x), shape (n, latent_dim)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._batched(self.encoder_, X, (self.latent_dim,))

    # --------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        return {"generator_used_": self.generator_used_}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrays = self._module_arrays("encoder", self.encoder_)
        arrays.update(self._module_arrays("discriminator", self.discriminator_))
        arrays["gaussian.mu"] = self.gaussian_.mu
        arrays["gaussian.cov"] = self.gaussian_.cov
        arrays["gaussian.whiten"] = self.gaussian_.whiten
        return arrays

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        # the generator trains only: it is not saved, and not built to score
        self.generator_used_ = False
        nets = self._build_nets(torch.Generator().manual_seed(0))
        self.generator_used_ = bool(state.get("generator_used_", False))
        enc, disc = nets["encoder"], nets["discriminator"]
        self._load_module(enc, "encoder", arrays)
        self._load_module(disc, "discriminator", arrays)
        self.encoder_, self.discriminator_ = enc.eval(), disc.eval()
        d = self.latent_dim
        mu, cov, whiten = (arrays[f"gaussian.{k}"] for k in ("mu", "cov", "whiten"))
        if mu.shape != (d,) or cov.shape != (d, d) or whiten.shape != (d, d):
            raise ValueError(f"Gaussian parameters do not have latent_dim={d}")
        self.gaussian_ = GaussianScorer(mu=mu, cov=cov, whiten=whiten)
        self._set_scoring_tensors()


def uses_generator(generate_anomalies: bool | str, data: FitData) -> bool:
    """Whether the anomaly generator trains: ``generate_anomalies`` True, or "auto" and no
    labelled anomaly in the training or validation labels."""
    if generate_anomalies == "auto":
        return not bool((data.y == 1).any() or (data.y_val == 1).any())
    return bool(generate_anomalies)


def pseudo_validation(
    data: FitData, seed: int, device: torch.device
) -> tuple[torch.Tensor, np.ndarray]:
    """The validation normals and their corrupted copies
    (:func:`anoean.training.neural.corrupted_normals`, drawn from ``seed``), as the rows to
    encode and their labels (1 for a corrupted copy)."""
    rows, labels = with_corrupted_copies(data.X_val[data.y_val == 0], seed)
    return torch.from_numpy(np.ascontiguousarray(rows)).to(device), labels
