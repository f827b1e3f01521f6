"""What every neural detector shares on top of :class:`~anoean.core.detector.BaseDetector`,
including the one fit template (:meth:`NeuralDetector._fit`).

The template owns, in this order: seeding (``seed_``, ``device_``, the numpy generator for
the hold-out split, the torch generators for initialisation and for training); the stratified
hold-out of validation data when none is given; the input scaling statistics and their
float32 overflow check (:func:`anoean.core.splits.check_scaling`), stored in a scaling layer
inside the networks so that every inference path (torch, ONNX, numpy) applies it
identically; the optimisers (one :func:`anoean.training.adversarial.adam` per parameter
group); the training loop (:func:`anoean.training.loop.train_loop`: early stopping,
divergence handling, naming a validation row too large for the float32 arithmetic); and the
saved state every neural model has (``seed_``, ``history_``, ``best_epoch_``, ``n_epochs_``,
``fit_time_`` and the ``architecture``, checked against the networks on load).

A model supplies its networks (:meth:`~NeuralDetector._build_nets`), its parameter groups
and Adam betas, its training step (an :class:`~anoean.training.adversarial.AdversarialStep`
built from its losses), the per-epoch validation score, what to do once trained, and its
extra state: see the hooks below, :class:`anoean.models.anoean.detector.AnoEAN` and
:class:`anoean.models.gan.GANDetector`.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from torch import nn

from anoean.core.detector import BaseDetector
from anoean.core.runtime import make_generators, resolve_device, resolve_seed
from anoean.core.splits import check_scaling, holdout_split, resolve_scaling, scaling_stats
from anoean.nn.blocks import Standardize
from anoean.nn.gan import set_dropout_generator
from anoean.training import checkpoint, distributed
from anoean.training.adversarial import AdversarialStep, Group, Losses
from anoean.training.loop import (
    EpochBatches,
    ShardedBatches,
    TrainingDivergedError,
    train_loop,
)

#: rows per inference batch. Small batches keep each layer's activations in the CPU caches:
#: on 2 cores, scoring 1,000,000 x 122 rows ran at 1.7 M rows/s with 4,096-row batches
#: against 0.93 M rows/s with 32,768 (benchmarks/bench_anoean.py).
INFERENCE_BATCH = 4096


#: points on the integrated-gradients path of :meth:`NeuralDetector.explain`
EXPLAIN_STEPS = 32

#: share of the entries of a validation normal that :func:`corrupted_normals` replaces
CORRUPTION_RATE = 0.5


def corrupted_normals(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pseudo-anomalies made from normal rows alone, for early stopping without labelled
    anomalies: each entry of each row (a column of a table, a pixel of an image) is replaced,
    with probability :data:`CORRUPTION_RATE`, by the same entry of another row drawn at
    random. Every marginal is kept, the joint structure that makes a row normal is broken.

    An encoder that keeps the validation normals in N(0, I) and sends these rows out of it
    has learned the normal data's structure rather than its ranges; the AUC-PR of the
    validation normals against their corrupted copies is the early-stopping signal of
    :class:`~anoean.models.anoean.detector.AnoEAN` with ``generate_anomalies`` and no
    labelled validation anomaly. It is computed from the validation normals only.
    """
    n = X.shape[0]
    flat = X.reshape(n, -1)
    if n < 2:
        return X.copy()
    donors = rng.integers(0, n, size=flat.shape)
    replace = rng.random(flat.shape) < CORRUPTION_RATE
    mixed = np.where(replace, flat[donors, np.arange(flat.shape[1])], flat)
    return mixed.astype(X.dtype, copy=False).reshape(X.shape)


def with_corrupted_copies(normals: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``normals`` followed by their :func:`corrupted_normals` copies (drawn from ``seed``),
    and the labels (0, then 1 for a copy): the pseudo-anomaly validation set of the
    detectors trained without labelled anomalies. Fewer than 2 rows get no copies."""
    n = normals.shape[0]
    if n < 2:
        return normals, np.zeros(n, dtype=np.int64)
    fake = corrupted_normals(normals, np.random.default_rng([seed, 17]))
    labels = np.r_[np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)]
    return np.concatenate([normals, fake]), labels


def finite_weights(module: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``module`` is finite."""
    return all(
        bool(torch.isfinite(t).all())
        for t in (*module.parameters(), *module.buffers())
        if t.is_floating_point()
    )


@dataclass
class FitData:
    """The rows of one fit after the hold-out split, and their tensors on the device.

    ``X, y`` are the training part and ``X_val, y_val`` the validation part; ``X_all`` is
    the data passed to ``fit`` (both parts when the validation rows were held out of it).
    ``train_rows`` and ``val_rows`` map their rows to the row numbers to report, and
    ``val_name`` names the validation rows in messages. ``Xn``, ``Xa`` and ``Xv`` (the normal
    and the anomalous training rows and the validation rows, as the model trains on them)
    are set by :meth:`NeuralDetector._to_device`.
    """

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_all: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray
    val_name: str
    Xn: torch.Tensor = None  # type: ignore[assignment]
    Xa: torch.Tensor = None  # type: ignore[assignment]
    Xv: torch.Tensor = None  # type: ignore[assignment]

    @property
    def has_val_anomalies(self) -> bool:
        return bool((self.y_val == 1).any())


class NeuralDetector(BaseDetector):
    """Base for torch detectors: the fit template, architecture check, device, batched
    inference helpers, the common saved state."""

    __abstract__ = True

    #: parameter constraints every neural detector shares (subclasses add their own)
    _parameter_constraints: ClassVar[dict] = {
        **BaseDetector._parameter_constraints,
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "device": [str],
    }
    #: name of the parameter choosing "mlp" (tables) or "conv" (images)
    _arch_param: ClassVar[str] = "network"
    #: whether the fit trains data-parallel inside a distributed session
    #: (:mod:`anoean.training.distributed`); the others refuse one
    _distributed_training: ClassVar[bool] = False

    def _arch(self) -> str:
        return str(getattr(self, self._arch_param))

    def _accepts_images(self) -> bool:
        return self._arch() == "conv"

    def _validate_X(self, X: Any, *, reset: bool, name: str = "X") -> np.ndarray:
        X = super()._validate_X(X, reset=reset, name=name)
        param, kind = self._arch_param, self._arch()
        if kind == "mlp" and X.ndim != 2:
            raise ValueError(f"{param}='mlp' needs 2-D {name} (n, p); got shape {X.shape}")
        if kind == "conv" and X.ndim != 4:
            raise ValueError(
                f"{param}='conv' needs images (n, H, W) or (n, C, H, W) as {name}; got shape "
                f"{X.shape}"
            )
        return X

    def _resolve_scaling(self) -> str:
        return resolve_scaling(getattr(self, "scaling", "auto"), images=len(self.input_shape_) > 1)

    @torch.no_grad()
    def _batched(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        X: np.ndarray,
        out_shape: tuple[int, ...] = (),
        batch: int = INFERENCE_BATCH,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """Apply ``fn`` to X in batches on ``self.device_``; results land in one numpy array
        of ``dtype`` (float64 for scores, so that no finite distance overflows)."""
        out = np.empty((X.shape[0], *out_shape), dtype=dtype)
        dev = self.device_
        with torch.inference_mode():
            for s in range(0, X.shape[0], batch):
                xb = torch.from_numpy(np.ascontiguousarray(X[s : s + batch])).to(dev)
                out[s : s + batch] = fn(xb).cpu().numpy()
        return out

    def _check_rows_finite(
        self, X: np.ndarray, values: np.ndarray, index: np.ndarray, name: str
    ) -> None:
        """Raise :class:`~anoean.core.validation.UnscorableRowsError` naming the first row of X
        whose ``values`` (its scores, or its codes: one row of values per row of X) are not all
        finite; ``index`` maps X's rows to the row numbers to report."""
        ok = np.isfinite(np.asarray(values).reshape(X.shape[0], -1)).all(axis=1)
        self._check_scores(X, np.where(ok, 0.0, np.nan), name, index=index)

    # -------------------------------------------------------------- attributions
    def _score_torch(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """a(x) as a differentiable torch function of input rows, or None when the model's
        score has no gradient to follow (:meth:`explain` then refuses)."""
        return None

    def explain(self, X: Any, *, baseline: Any = None, steps: int = EXPLAIN_STEPS) -> np.ndarray:
        """Why each row scores as it does: the share of a(x) owed to each input feature.

        Integrated gradients of the anomaly score along the straight path from ``baseline``
        to each row: ``attr_j = (x_j - b_j) * mean over t of da/dx_j(b + t (x - b))``, with
        ``steps`` midpoints t. The attributions of a row add up to ``a(x) - a(b)`` up to the
        path integral's discretisation error (completeness), so a feature with a large
        positive attribution is one that moved the row away from normal.

        Parameters
        ----------
        X : array-like, the rows to explain (as :meth:`anomaly_score` takes them).
        baseline : array-like of one row's shape, optional
            The reference point. Default: the centre of the training rows that the model's
            input scaling recorded (their mean with the default ``"standard"`` scaling; the
            middle of their range with ``"minmax"``; zero with ``"none"``).
        steps : int
            Points on the path (the discretisation of the integral).

        Returns
        -------
        ndarray of shape X.shape, float64.

        Raises
        ------
        TypeError
            The model's score is not differentiable in torch (the GAN baselines' latent
            search, the kernel baselines): only AnoEAN and AnoEANPlus explain their scores.
        """
        check_is_fitted(self)
        fn = self._score_torch()
        if fn is None:
            raise TypeError(
                f"{type(self).__name__} cannot explain its scores (its score has no gradient "
                "to follow); AnoEAN and AnoEANPlus can"
            )
        if int(steps) < 1:
            raise ValueError(f"steps must be at least 1; got {steps}")
        X = self._validate_X(X, reset=False)
        b = self._explain_baseline() if baseline is None else np.asarray(baseline, np.float32)
        if b.shape != X.shape[1:]:
            raise ValueError(f"baseline has shape {b.shape}; a row of X has {X.shape[1:]}")
        self._check_scores(X, self._anomaly_score(X))  # an unscorable row is named, not NaN
        dev = self.device_
        t = (torch.arange(int(steps), dtype=torch.float32, device=dev) + 0.5) / int(steps)
        t = t.reshape(-1, *([1] * X.ndim))
        base = torch.from_numpy(np.ascontiguousarray(b)).to(dev)
        out = np.empty(X.shape, dtype=np.float64)
        chunk = max(1, INFERENCE_BATCH // int(steps))
        with torch.enable_grad():
            for s in range(0, X.shape[0], chunk):
                x = torch.from_numpy(np.ascontiguousarray(X[s : s + chunk])).to(dev)
                path = (base + t * (x - base)).reshape(-1, *X.shape[1:]).requires_grad_(True)
                (grad,) = torch.autograd.grad(fn(path).sum(), path)
                mean_grad = grad.reshape(int(steps), *x.shape).double().mean(0)
                out[s : s + chunk] = (mean_grad * (x - base).double()).cpu().numpy()
        return out

    def _explain_baseline(self) -> np.ndarray:
        """The centre of the training rows, from the input scaling's statistics."""
        shift, scale = self._input_scaling() or (None, None)
        if shift is None or scale is None:
            return np.zeros(self.input_shape_, dtype=np.float32)
        kind = self._resolve_scaling()
        if kind == "minmax":
            return (shift + scale / 2).astype(np.float32)
        if kind == "none":
            return np.zeros_like(shift)
        return shift.astype(np.float32)  # "standard": the mean

    def _input_scaling(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (shift, scale) of the input scaling layer, to explain an unscorable row."""
        for name in ("encoder_", "nets_", "scorer_"):
            module = getattr(self, name, None)
            scaler = getattr(module, "scaler", None)
            if scaler is None and isinstance(module, nn.ModuleDict) and "scaler" in module:
                scaler = module["scaler"]
            if isinstance(scaler, Standardize):
                return scaler.shift.cpu().numpy(), scaler.scale.cpu().numpy()
        return None

    # ------------------------------------------------------------ fit template
    def _fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        t_start = time.perf_counter()
        self.seed_ = resolve_seed(self.random_state)
        ctx = distributed.current()
        self.device_ = ctx.device if ctx is not None else resolve_device(self.device)
        self._resolve_sizes()
        rng, _ = make_generators(self.seed_)
        init_gen = torch.Generator().manual_seed(self.seed_)
        # each rank of a distributed run draws from its own stream (rank 0: the usual one)
        train_seed = distributed.rank_seed(self.seed_ + 1)
        train_gen = torch.Generator(device=self.device_).manual_seed(train_seed)
        data = self._split_data(X, y, X_val, y_val, rng)
        self._check_data(data)

        nets = self._build_nets(init_gen)
        rows, index = self._scaling_rows(data)
        shift, scale = self._scaling_stats(rows)
        check_scaling(rows, shift, scale, index, "X (training data)")
        self._scaler(nets).set(shift, scale)
        self._prepare_nets(nets)
        self._to_device(nets, data)
        betas = self._adam_betas()
        groups = {
            name: Group.adam(params, self.lr, betas)
            for name, params in self._param_groups(nets).items()
        }
        step = self._make_step(nets, data, groups, train_gen)
        # in a distributed run, rank 0 validates and broadcasts the score
        evaluate = distributed.on_rank0(self._make_evaluate(nets, data))
        batches = self._batches(data, train_gen)
        if ctx is not None:
            if not (self._distributed_training and isinstance(step, AdversarialStep)):
                raise distributed.DistributedError(
                    f"{type(self).__name__} does not train distributed (--distributed trains "
                    "AnoEAN and AnoEANPlus)"
                )
            step.distribute(distributed.group_sync)
        keep = self._kept(nets)
        saver = checkpoint.active()
        run_ckpt = None
        if saver is not None:
            run_ckpt = saver.bind(
                nets=nets,
                optimizers={k: g.optimizer for k, g in groups.items()},
                generator=train_gen,
                batches=batches,
                fingerprint=self._fingerprint(data),
            )
        set_dropout_generator(nets, train_gen)
        try:
            result = train_loop(
                step=step,
                batches=batches,
                evaluate=evaluate,
                keep=keep,
                max_epochs=self.max_epochs,
                patience=self.patience,
                verbose=self.verbose,
                desc=type(self).__name__,
                checkpoint=run_ckpt,
            )
        except TrainingDivergedError:
            # finite weights whose validation scores are not: a validation row too large for
            # the float32 arithmetic, not a learning rate problem; name that row
            if data.has_val_anomalies and all(finite_weights(m) for m in keep.values()):
                self._name_unscorable_validation_row(nets, data)
            raise
        finally:
            set_dropout_generator(nets, None)
        distributed.check_replicas(keep)
        self._set_trained(nets)
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_epochs_ = len(result.history)
        self._after_training(data)
        self.fit_time_ = time.perf_counter() - t_start
        return self._fit_scores(data)

    # hooks: what a model must say
    @abstractmethod
    def _build_nets(self, generator: torch.Generator) -> nn.ModuleDict:
        """Every network of the model, initialised from ``generator``, on ``self.device_``."""

    @abstractmethod
    def _param_groups(self, nets: nn.ModuleDict) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group; ``"d"``, the discriminators, first."""

    @abstractmethod
    def _adam_betas(self) -> tuple[float, float]:
        """Adam's (beta1, beta2) for every group."""

    @abstractmethod
    def _make_step(
        self,
        nets: nn.ModuleDict,
        data: FitData,
        groups: dict[str, Group],
        generator: torch.Generator,
    ) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
        """The training step on index batches of ``data.Xn`` / ``data.Xa`` (an
        :class:`~anoean.training.adversarial.AdversarialStep`); ``generator`` draws every
        random number of training."""

    @abstractmethod
    def _make_evaluate(self, nets: nn.ModuleDict, data: FitData) -> Callable[[], float | None]:
        """The per-epoch validation AUC-PR (None without validation anomalies; NaN when the
        weights have diverged, which stops training)."""

    @abstractmethod
    def _name_unscorable_validation_row(self, nets: nn.ModuleDict, data: FitData) -> None:
        """Training diverged with finite weights: raise
        :class:`~anoean.core.validation.UnscorableRowsError` naming the validation row whose
        score is not finite, if there is one."""

    @abstractmethod
    def _architecture(self) -> dict[str, Any]:
        """The fitted networks' architecture, as JSON (recorded in the model file)."""

    @abstractmethod
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The arrays to save (the weights, by name)."""

    @abstractmethod
    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the fitted model from its saved state (after the common part)."""

    # hooks with defaults
    def _resolve_sizes(self) -> None:
        """Resolve parameters whose default depends on the network kind."""

    def _split_data(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        rng: np.random.Generator,
    ) -> FitData:
        """The training and validation parts: the given ``X_val``, or a stratified hold-out
        of ``validation_fraction`` of each class."""
        return _split(X, y, X_val, y_val, self.validation_fraction, rng)

    def _check_data(self, data: FitData) -> None:
        """Refuse data or parameters that cannot be trained on, before anything is built."""

    def _scaler(self, nets: nn.ModuleDict) -> Standardize:
        scaler = nets["scaler"]
        assert isinstance(scaler, Standardize)
        return scaler

    def _scaling_rows(self, data: FitData) -> tuple[np.ndarray, np.ndarray]:
        """The rows the input scaling is fitted on, and their row numbers: all training rows."""
        return data.X, data.train_rows

    def _scaling_stats(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return scaling_stats(X, self._resolve_scaling())

    def _prepare_nets(self, nets: nn.ModuleDict) -> None:
        """Called with the input scaling set, before the optimisers see the parameters."""

    def _to_device(self, nets: nn.ModuleDict, data: FitData) -> None:
        """Set ``data.Xn``, ``data.Xa``, ``data.Xv``: by default the rows as they are."""
        dev = self.device_
        data.Xn = torch.from_numpy(data.X[data.y == 0]).to(dev)
        data.Xa = torch.from_numpy(data.X[data.y == 1]).to(dev)
        data.Xv = torch.from_numpy(data.X_val).to(dev)

    def _batches(self, data: FitData, generator: torch.Generator) -> EpochBatches:
        n_normal, n_anomaly = int(data.Xn.shape[0]), int(data.Xa.shape[0])
        ctx = distributed.current()
        if ctx is not None:
            # this rank's shard of the normals each epoch; every labelled anomaly
            return ShardedBatches(
                n_normal,
                n_anomaly,
                self.batch_size,
                generator,
                self.device_,
                self.seed_,
                ctx.rank,
                ctx.world_size,
            )
        return EpochBatches(n_normal, n_anomaly, self.batch_size, generator, self.device_)

    def _fingerprint(self, data: FitData) -> dict[str, Any]:
        """What a checkpoint must have been written by to be resumed: the class, its
        parameters, the number of processes and a digest of the data."""
        digest = hashlib.sha256()
        for a in (data.X, data.y, data.X_val, data.y_val):
            digest.update(np.ascontiguousarray(a).tobytes())
        ctx = distributed.current()
        return {
            "class": type(self).__name__,
            "params": json.loads(json.dumps(self.get_params(), default=str)),
            "world_size": 1 if ctx is None else ctx.world_size,
            "data_sha256": digest.hexdigest(),
        }

    def _kept(self, nets: nn.ModuleDict) -> dict[str, nn.Module]:
        """The modules whose best-epoch weights training restores."""
        return {"nets": nets}

    def _set_trained(self, nets: nn.ModuleDict) -> None:
        """Make the trained networks the detector's."""
        self.nets_ = nets.eval()

    def _after_training(self, data: FitData) -> None:
        """Fit what the score needs beyond the networks (AnoEAN: the Gaussian)."""

    def _fit_scores(self, data: FitData) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the validation normals and of all the rows passed to ``fit``."""
        val_scores = self._anomaly_score(data.X_val)
        train_scores = self._anomaly_score(data.X_all)
        return val_scores[data.y_val == 0], train_scores

    def _extra_state(self) -> dict[str, Any]:
        """Fitted scalars to save beyond the common ones."""
        return {}

    # ------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "seed_": self.seed_,
            "history_": self.history_,
            "best_epoch_": self.best_epoch_,
            "n_epochs_": self.n_epochs_,
            "fit_time_": self.fit_time_,
            **self._extra_state(),
            "architecture": self._architecture(),
        }
        return state, self._state_arrays()

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.device_ = resolve_device(self.device)
        self.seed_ = int(state["seed_"])
        self.history_ = list(state["history_"])
        self.best_epoch_ = int(state["best_epoch_"])
        self.n_epochs_ = int(state["n_epochs_"])
        self.fit_time_ = float(state["fit_time_"])
        self._restore(state, arrays)
        recorded = state.get("architecture")  # None in files written by anoean 0.1.0
        if recorded is not None:
            built = json.loads(json.dumps(self._architecture()))
            if recorded != built:
                raise ValueError(
                    "the architecture recorded in the model file is not the one its "
                    f"parameters build: recorded {_first_difference(recorded, built)}"
                )

    def _module_arrays(self, prefix: str, module: nn.Module) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}

    @staticmethod
    def _load_module(module: nn.Module, prefix: str, arrays: dict[str, Any]) -> None:
        state = {
            k[len(prefix) + 1 :]: torch.from_numpy(np.array(v))
            for k, v in arrays.items()
            if k.startswith(prefix + ".")
        }
        missing = set(module.state_dict()) - set(state)
        unexpected = set(state) - set(module.state_dict())
        if missing or unexpected:
            raise ValueError(
                f"weights for {prefix!r} do not match the architecture: "
                f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        module.load_state_dict(state, strict=True)


def _split(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    validation_fraction: float,
    rng: np.random.Generator,
) -> FitData:
    """The training and validation parts: the given ``X_val``, or a stratified hold-out."""
    X_all = X
    # the row numbers to report for the training and validation rows
    train_rows, val_rows, val_name = np.arange(X.shape[0]), None, "X_val"
    if X_val is None:
        tr, va = holdout_split(y, validation_fraction, rng)
        X, y, X_val, y_val = X[tr], y[tr], X[va], y[va]
        train_rows, val_rows, val_name = tr, va, "X (training data)"
    assert y_val is not None
    if val_rows is None:
        val_rows = np.arange(X_val.shape[0])
    return FitData(X, y, X_val, y_val, X_all, train_rows, val_rows, val_name)


def _first_difference(recorded: Any, built: Any, path: str = "") -> str:
    """Where two JSON values first differ, for the error message."""
    if isinstance(recorded, dict) and isinstance(built, dict):
        for key in sorted(set(recorded) | set(built)):
            if recorded.get(key) != built.get(key):
                return _first_difference(recorded.get(key), built.get(key), f"{path}.{key}")
    if isinstance(recorded, list) and isinstance(built, list) and len(recorded) == len(built):
        for i, (a, b) in enumerate(zip(recorded, built, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
    return f"{path.lstrip('.') or 'architecture'}={recorded!r}, built {built!r}"
