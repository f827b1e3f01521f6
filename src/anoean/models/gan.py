"""What AnoGAN, EGBAD and ALAD share: parameters, fitting, the adversarial update, scoring
and persistence. Each model only says which networks it has, what its losses are and how it
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
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from anoean.core.metrics import aucpr
from anoean.core.runtime import make_generators, resolve_device, resolve_seed
from anoean.core.splits import holdout_split, scaling_stats
from anoean.nn.blocks import Standardize, build
from anoean.nn.gan import init_original, set_dropout_generator
from anoean.training.loop import EpochBatches, TrainingDivergedError, train_loop
from anoean.training.neural import NeuralDetector, check_scaling, finite_weights

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
        kind = self.scaling
        if kind == "auto":
            kind = "symmetric" if self.network == "conv" else "standard"
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
    def _make_step(
        self,
        nets: nn.ModuleDict,
        Xn: torch.Tensor,
        gen: torch.Generator,
    ) -> Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        """The alternating D / (G, E) update on a batch of scaled normal rows."""
        params = {
            g: [p for name in names for p in nets[name].parameters()]
            for g, names in self._groups.items()
        }
        opts = {
            g: torch.optim.Adam(ps, lr=self.lr, betas=(ADAM_BETA1, 0.999))
            for g, ps in params.items()
        }
        gen_groups = [g for g in self._groups if g != "d"]
        d, dev = self.latent_dim_, self.device_

        def step(idx_n: torch.Tensor, idx_a: torch.Tensor) -> dict[str, torch.Tensor]:
            x = Xn[idx_n]
            z = torch.randn(x.shape[0], d, generator=gen, device=dev)
            loss_d, parts = self._discriminator_loss(nets, x, z)
            opts["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            opts["d"].step()
            for p in params["d"]:
                p.requires_grad_(False)
            try:
                z = torch.randn(x.shape[0], d, generator=gen, device=dev)
                losses = self._generator_losses(nets, x, z)
                # every group's gradient first, then every update: stepping G before E's
                # gradient is taken would change the weights E's backward pass goes through
                for i, g in enumerate(gen_groups):
                    grads = torch.autograd.grad(
                        losses[g],
                        params[g],
                        retain_graph=i < len(gen_groups) - 1,
                        allow_unused=True,
                    )
                    for p, gr in zip(params[g], grads, strict=True):
                        p.grad = gr
                for g in gen_groups:
                    opts[g].step()
            finally:
                for p in params["d"]:
                    p.requires_grad_(True)
            out = {"loss_d": loss_d.detach()}
            out.update({f"loss_{g}": losses[g].detach() for g in gen_groups})
            out.update({k: v.detach() for k, v in parts.items()})
            return out

        return step

    def _fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        t_start = time.perf_counter()
        self.seed_ = resolve_seed(self.random_state)
        self.device_ = resolve_device(self.device)
        self.latent_dim_ = self._resolved("latent_dim")
        self.batch_size_ = self._resolved("batch_size")
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
        X_normal = X[y == 0]
        if X_normal.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 normal training rows (after holding "
                f"out validation data); got {X_normal.shape[0]}"
            )

        nets = self._build_nets(init_gen)
        scaler = nets["scaler"]
        assert isinstance(scaler, Standardize)
        shift, scale = self._scaling_stats(X_normal)
        check_scaling(X_normal, shift, scale, train_rows[y == 0], "X (training data)")
        scaler.set(shift, scale)
        dev = self.device_
        with torch.no_grad():
            Xn = nets["scaler"](torch.from_numpy(X_normal).to(dev))
            Xv = nets["scaler"](torch.from_numpy(X_val).to(dev))
        has_val_anomalies = bool((y_val == 1).any())
        self.nets_ = nets  # scoring helpers read self.nets_ during training too

        def evaluate() -> float | None:
            if not has_val_anomalies:
                return None
            scores = self._validation_scores(Xv)
            if not np.isfinite(scores).all():
                # the weights have diverged: train_loop stops on a non-finite score and
                # restores the best epoch so far (aucpr itself refuses non-finite scores)
                return float("nan")
            return aucpr(y_val, scores)

        set_dropout_generator(nets, train_gen)
        batches = _TailMergedBatches(int(Xn.shape[0]), 0, self.batch_size_, train_gen, dev)
        try:
            result = train_loop(
                step=self._make_step(nets, Xn, train_gen),
                batches=batches,
                evaluate=evaluate,
                keep={"nets": nets},
                max_epochs=self.max_epochs,
                patience=self.patience,
                verbose=self.verbose,
                desc=type(self).__name__,
            )
        except TrainingDivergedError:
            # finite weights whose validation scores are not: a validation row too large for
            # the float32 arithmetic, not a learning rate problem; name that row
            if has_val_anomalies and finite_weights(nets):
                nets.eval()
                self._check_rows_finite(X_val, self._validation_scores(Xv), val_rows, val_name)
            raise
        finally:
            set_dropout_generator(nets, None)
        nets.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_epochs_ = len(result.history)
        self.fit_time_ = time.perf_counter() - t_start
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
            if finite_weights(nets):
                self._check_scores(X_val, val_scores, val_name, val_rows)
                self._check_scores(X_all, all_scores, "X (training data)")
            # a safety net
            raise TrainingDivergedError(
                f"{type(self).__name__}: training diverged: the anomaly scores of the kept "
                f"weights (epoch {self.best_epoch_}) are not finite (lr={self.lr}); try a "
                "smaller learning rate"
            )
        self._check_scores(X[anomalies], anomaly_scores, "X (training data)", train_rows[anomalies])
        return val_scores[y_val == 0], all_scores

    # ------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "seed_": self.seed_,
            "history_": self.history_,
            "best_epoch_": self.best_epoch_,
            "n_epochs_": self.n_epochs_,
            "fit_time_": self.fit_time_,
            "latent_dim_": self.latent_dim_,
            "batch_size_": self.batch_size_,
        }
        return state, self._module_arrays("nets", self.nets_)

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.device_ = resolve_device(self.device)
        self.seed_ = int(state["seed_"])
        self.history_ = list(state["history_"])
        self.best_epoch_ = int(state["best_epoch_"])
        self.n_epochs_ = int(state["n_epochs_"])
        self.fit_time_ = float(state["fit_time_"])
        self.latent_dim_ = int(state["latent_dim_"])
        self.batch_size_ = int(state["batch_size_"])
        if self.latent_dim_ != self._resolved("latent_dim"):
            raise ValueError(f"latent_dim_={self.latent_dim_} does not match the parameters")
        nets = self._build_nets(torch.Generator().manual_seed(0))
        self._load_module(nets, "nets", arrays)
        self.nets_ = nets.eval()
