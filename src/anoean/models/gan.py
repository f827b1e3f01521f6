"""What AnoGAN, EGBAD and ALAD share: parameters, the hooks of the fit template
(:class:`anoean.training.neural.NeuralDetector`), the adversarial step
(:class:`anoean.training.adversarial.AdversarialStep`) fed with their losses, scoring and
persistence. Each model only says which networks it has, what its losses are and how it
scores.

Training (one step per batch of normal rows, through :func:`anoean.training.loop.train_loop`):

1. *Discriminator update.* Fresh prior samples z ~ N(0, I); every discriminator's loss is
   built from :func:`anoean.nn.losses.neg_log_d` / :func:`~anoean.nn.losses.neg_log_1m_d`; the
   generator and encoder outputs are computed without a graph.
2. *Generator / encoder update.* Fresh z; the discriminators are frozen. Each group of
   networks (G, E) is updated with the gradient of *its own* loss, from one forward pass, as
   in the originals (``gen_op`` and ``enc_op`` run in the same ``sess.run``). This matters
   for ALAD, whose G and E losses share the cycle terms but differ in the BiGAN term.

The GAN baselines are unsupervised: labelled anomalies in ``y`` are left out of training and
of the input scaling statistics, so ``fit(X, y, X_val=..., y_val=...)`` equals
``fit(X[y == 0], X_val=..., y_val=...)``. Labels matter only through the validation set:
early stopping (and :func:`anoean.experiments.search.select_hyperparameters`) use the
validation AUC-PR of the model's own anomaly score.

Documented deviations from the originals (details in docs/baselines.md):

* the originals score with an exponential moving average (EMA) of the weights and train for
  a fixed number of epochs; we keep the weights of the best validation epoch instead;
* the originals' discriminator and generator steps use two different shuffles of the data;
  we use the same batch for both (one pass of the shared loop's batches per epoch);
* the originals feed KDD unscaled (their ``scale`` flag is never set); we standardise
  tables by default (``scaling="auto"``) and map images to [-1, 1] for the tanh generator;
* the originals drop the last partial batch; we keep every row, merging a one-row tail
  batch into the previous batch (batch norm cannot train on one row).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Iterator
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from anoean.core.metrics import aucpr
from anoean.core.splits import resolve_scaling, scaling_stats
from anoean.nn.blocks import Standardize, build, describe
from anoean.nn.gan import init_original
from anoean.training.adversarial import AdversarialStep, Group, Losses
from anoean.training.loop import EpochBatches, TrainingDivergedError
from anoean.training.neural import FitData, NeuralDetector, finite_weights

logger = logging.getLogger("anoean")

#: the originals' sizes: KDD nets use a 32-d latent space and batches of 50; the MNIST nets
#: a 200-d latent space and batches of 100
NETWORK_DEFAULTS: dict[str, dict[str, int]] = {
    "mlp": {"latent_dim": 32, "batch_size": 50},
    "conv": {"latent_dim": 200, "batch_size": 100},
}
#: Adam's beta1 in every original GAN optimiser
ADAM_BETA1 = 0.5
#: rows per scoring chunk: tables are cheap; conv activations of 28x28 images are not
SCORE_CHUNK = {"mlp": 32768, "conv": 512}


class _TailMergedBatches(EpochBatches):
    """:class:`EpochBatches` over normals only, with a one-row tail merged into the previous
    batch: batch norm cannot be trained on a single row, and every row is still seen once."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b = self.n_normal, self.batch_size
        perm = torch.randperm(n, generator=self.generator, device=self.device)
        empty = perm[:0]
        starts = list(range(0, n, b))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        for i, s in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else n
            yield perm[s:end], empty

    def __len__(self) -> int:
        n, b = self.n_normal, self.batch_size
        k = -(-n // b)
        return k - 1 if k > 1 and n % b == 1 else k


def image_range_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale mapping the global [min, max] of ``X`` onto [-1, 1] (one value for all
    pixels, as the originals' centred MNIST, so the tanh generator can reach every value)."""
    lo, hi = float(X.min()), float(X.max())
    half = (hi - lo) / 2.0 if hi > lo else 1.0
    shape = X.shape[1:]
    return np.full(shape, (hi + lo) / 2.0, np.float32), np.full(shape, half, np.float32)


class GANDetector(NeuralDetector):
    """Base class of the GAN baselines (not a detector by itself)."""

    __abstract__ = True

    _parameter_constraints: ClassVar[dict] = {
        **NeuralDetector._parameter_constraints,
        "network": [StrOptions({"mlp", "conv"})],
        "latent_dim": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],  # None: original's
        "scaling": [StrOptions({"auto", "standard", "minmax", "symmetric", "none"})],
    }

    #: group name -> names of the networks it updates; "d" is the discriminator group
    _groups: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: weight initialisation of the originals, per network kind
    _init_scheme: ClassVar[dict[str, str]] = {"mlp": "xavier", "conv": "normal"}

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
        contamination: float | None = None,
        target_false_alarm: float = 0.05,
        random_state: Any = None,
        device: str = "auto",
        verbose: int = 0,
    ) -> None:
        self.network = network
        self.latent_dim = latent_dim
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

    # ------------------------------------------------------------------ input
    def _scaling_stats(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kind = resolve_scaling(self.scaling, images=self.network == "conv", for_images="symmetric")
        if kind == "symmetric":
            return image_range_stats(X)
        return scaling_stats(X, kind)

    # ---------------------------------------------------------------- building
    def _resolved(self, name: str) -> int:
        value = getattr(self, name)
        return int(value) if value is not None else NETWORK_DEFAULTS[self.network][name]

    @abstractmethod
    def _make_nets(self, in_shape: tuple[int, ...], latent_dim: int) -> dict[str, nn.Module]:
        """The model's networks by name (without the scaler)."""

    def _build_nets(self, generator: torch.Generator) -> nn.ModuleDict:
        shape, d = tuple(self.input_shape_), self.latent_dim_

        def make() -> nn.ModuleDict:
            return nn.ModuleDict({"scaler": Standardize(shape), **self._make_nets(shape, d)})

        nets = build(make, generator, self.device_)
        init_original(nets, self._init_scheme[self.network], generator)
        return nets  # type: ignore[return-value]

    # ------------------------------------------------------------------ losses
    @abstractmethod
    def _discriminator_loss(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss of the discriminator group on scaled rows x and prior samples z, plus
        any parts worth recording in the history."""

    @abstractmethod
    def _generator_losses(
        self, nets: nn.ModuleDict, x: torch.Tensor, z: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Loss of each non-discriminator group ("g", "e"), from one forward pass."""

    # ----------------------------------------------------------------- scoring
    @abstractmethod
    def _score_chunk(self, xs: torch.Tensor) -> torch.Tensor:
        """Anomaly scores of a chunk of *scaled* rows already on the device."""

    def _chunk(self) -> int:
        return SCORE_CHUNK[self.network]

    def _scores_of_scaled(
        self,
        xs: torch.Tensor,
        score_chunk: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> np.ndarray:
        n, step = xs.shape[0], self._chunk()
        score_chunk = self._score_chunk if score_chunk is None else score_chunk
        out = np.empty(n, dtype=np.float32)
        for s in range(0, n, step):
            out[s : s + step] = score_chunk(xs[s : s + step]).float().cpu().numpy()
        return out

    def _validation_scores(self, xs: torch.Tensor) -> np.ndarray:
        """Scores of the scaled validation rows for the per-epoch early-stopping check; the
        model's own anomaly score unless a subclass has a cheaper proxy."""
        return self._scores_of_scaled(xs)

    def _anomaly_score(self, X: np.ndarray) -> np.ndarray:
        n, step = X.shape[0], self._chunk()
        out = np.empty(n, dtype=np.float32)
        scaler = self.nets_["scaler"]
        for s in range(0, n, step):
            xb = torch.from_numpy(np.ascontiguousarray(X[s : s + step])).to(self.device_)
            with torch.no_grad():
                xs = scaler(xb)
            out[s : s + step] = self._score_chunk(xs).float().cpu().numpy()
        return out

    # ----------------------------------------------------------------- fitting
    # the hooks of the fit template (anoean.training.neural.NeuralDetector._fit)
    def _resolve_sizes(self) -> None:
        self.latent_dim_ = self._resolved("latent_dim")
        self.batch_size_ = self._resolved("batch_size")

    def _check_data(self, data: FitData) -> None:
        n_normal = int((data.y == 0).sum())
        if n_normal < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 normal training rows (after holding "
                f"out validation data); got {n_normal}"
            )

    def _scaling_rows(self, data: FitData) -> tuple[np.ndarray, np.ndarray]:
        normal = data.y == 0
        return data.X[normal], data.train_rows[normal]

    def _prepare_nets(self, nets: nn.ModuleDict) -> None:
        self.nets_ = nets  # scoring helpers read self.nets_ during training too

    def _to_device(self, nets: nn.ModuleDict, data: FitData) -> None:
        """The normal training rows and the validation rows, scaled once (the anomalies
        do not take part in training)."""
        dev = self.device_
        with torch.no_grad():
            data.Xn = nets["scaler"](torch.from_numpy(data.X[data.y == 0]).to(dev))
            data.Xv = nets["scaler"](torch.from_numpy(data.X_val).to(dev))
        data.Xa = data.Xn[:0]

    def _param_groups(self, nets: nn.ModuleDict) -> dict[str, list[nn.Parameter]]:
        return {
            g: [p for name in names for p in nets[name].parameters()]
            for g, names in self._groups.items()
        }

    def _adam_betas(self) -> tuple[float, float]:
        return (ADAM_BETA1, 0.999)

    def _make_step(
        self,
        nets: nn.ModuleDict,
        data: FitData,
        groups: dict[str, Group],
        generator: torch.Generator,
    ) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
        """The alternating D / (G, E) update on a batch of scaled normal rows: a fresh z for
        the discriminators' loss, then a fresh z for the generator / encoder losses."""
        Xn, d, dev = data.Xn, self.latent_dim_, self.device_

        def prior(x: torch.Tensor) -> torch.Tensor:
            return torch.randn(x.shape[0], d, generator=generator, device=dev)

        def forward(idx_n: torch.Tensor, idx_a: torch.Tensor) -> torch.Tensor:
            return Xn[idx_n]

        return AdversarialStep(
            groups["d"],
            {g: group for g, group in groups.items() if g != "d"},
            lambda x: self._discriminator_loss(nets, x, prior(x)),
            lambda x: self._generator_losses(nets, x, prior(x)),
            forward,
        )

    def _make_evaluate(self, nets: nn.ModuleDict, data: FitData) -> Callable[[], float | None]:
        Xv, y_val, has_val_anomalies = data.Xv, data.y_val, data.has_val_anomalies

        def evaluate() -> float | None:
            if not has_val_anomalies:
                return None
            scores = self._validation_scores(Xv)
            if not np.isfinite(scores).all():
                # the weights have diverged: train_loop stops on a non-finite score and
                # restores the best epoch so far (aucpr itself refuses non-finite scores)
                return float("nan")
            return aucpr(y_val, scores)

        return evaluate

    def _batches(self, data: FitData, generator: torch.Generator) -> EpochBatches:
        return _TailMergedBatches(
            int(data.Xn.shape[0]), 0, self.batch_size_, generator, self.device_
        )

    def _name_unscorable_validation_row(self, nets: nn.ModuleDict, data: FitData) -> None:
        nets.eval()
        scores = self._validation_scores(data.Xv)
        self._check_rows_finite(data.X_val, scores, data.val_rows, data.val_name)

    def _fit_scores(self, data: FitData) -> tuple[np.ndarray, np.ndarray]:
        X, y, X_val, y_val, X_all = data.X, data.y, data.X_val, data.y_val, data.X_all
        val_rows, val_name = data.val_rows, data.val_name
        # scores of the training rows only serve the contamination threshold; AnoGAN's latent
        # search makes them expensive, so they are computed only when needed. Without them,
        # the labelled training anomalies (a few rows) are scored with the validation rows
        # (one latent search for AnoGAN): they are the only rows the model neither trained on
        # nor scores otherwise, and a row of its own training data that it cannot score is
        # named now, as AnoEAN does
        anomalies = np.flatnonzero(y == 1) if self.contamination is None else np.empty(0, int)
        both = X_val if anomalies.size == 0 else np.concatenate([X_val, X[anomalies]])
        scores = self._anomaly_score(both)
        val_scores, anomaly_scores = scores[: X_val.shape[0]], scores[X_val.shape[0] :]
        if self.contamination is not None:
            all_scores = self._anomaly_score(X_all)
        else:
            all_scores = np.empty(0, dtype=np.float32)
        if not (np.isfinite(val_scores).all() and np.isfinite(all_scores).all()):
            # train_loop keeps finite weights only: finite weights that score some rows as
            # NaN or inf meet rows too large for the float32 arithmetic; name the first
            if finite_weights(self.nets_):
                self._check_scores(X_val, val_scores, val_name, val_rows)
                self._check_scores(X_all, all_scores, "X (training data)")
            # a safety net
            raise TrainingDivergedError(
                f"{type(self).__name__}: training diverged: the anomaly scores of the kept "
                f"weights (epoch {self.best_epoch_}) are not finite (lr={self.lr}); try a "
                "smaller learning rate"
            )
        rows = data.train_rows[anomalies]
        self._check_scores(X[anomalies], anomaly_scores, "X (training data)", rows)
        return val_scores[y_val == 0], all_scores

    # ------------------------------------------------------------- persistence
    def _architecture(self) -> dict[str, Any]:
        return {name: describe(net) for name, net in self.nets_.items()}

    def _extra_state(self) -> dict[str, Any]:
        return {"latent_dim_": self.latent_dim_, "batch_size_": self.batch_size_}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self._module_arrays("nets", self.nets_)

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.latent_dim_ = int(state["latent_dim_"])
        self.batch_size_ = int(state["batch_size_"])
        if self.latent_dim_ != self._resolved("latent_dim"):
            raise ValueError(f"latent_dim_={self.latent_dim_} does not match the parameters")
        nets = self._build_nets(torch.Generator().manual_seed(0))
        self._load_module(nets, "nets", arrays)
        self.nets_ = nets.eval()
