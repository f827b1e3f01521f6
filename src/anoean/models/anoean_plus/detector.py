"""AnoEANPlus: AnoEAN's encoder and latent space, made the detector a user should pick.

The faithful :class:`~anoean.models.anoean.detector.AnoEAN` is the paper's method. AnoEANPlus
keeps its encoder, its discriminator and its losses, and changes what the benchmark on data
it has never seen (``benchmarks/adbench.py``, docs/benchmarks/adbench.md) showed to matter:

1. **Every labelled anomaly is used for training.** With 10% of the anomalies labelled, a
   small table has one to five of them; AnoEAN's stratified hold-out spends a fifth of them
   on early stopping. AnoEANPlus holds out normal rows only (``validation_fraction`` of
   them), and trains a fixed budget of ``max_epochs``.
2. **Unlabelled rows hide anomalies: trimmed losses.** In each batch the ``trim`` share of
   the normal rows whose codes lie farthest from the prior's mean is left out of the normal
   terms of L_D and L_E (:func:`~anoean.models.anoean_plus.nets.trimmed_normals`), and the
   Gaussian is fitted again without the ``trim`` share of the training normals farthest from
   the first fit.
3. **The Gaussian of the training normals**, many more codes than the validation normals
   (the opt-in ``gaussian_fit="train"`` of AnoEAN, which gained on MNIST n-vs-m).
4. **The normalised distance** u(x): the log(1 + distance) normalised by its median and
   interquartile range on the held-out normals, so that it and the head's logit are in the
   same units. ``n_members > 1`` makes an ensemble of encoders (each with its own
   discriminator, initialisation and Gaussian) whose normalised distances are averaged; on
   the development split three members gained 0.3 points of AUC-PR over one, within the
   noise, for three times the scoring cost, so the default is one.
5. **Score fusion.** With labelled anomalies, a supervised head (an MLP, 64-32-1) is trained
   on the scaled input, the codes and the normalised distances, labelled anomalies against
   the other training rows (class-weighted cross-entropy). The score is
   ``fusion_weight * u(x) + (1 - fusion_weight) * h(x)``, where h is the head's logit
   normalised like u on the held-out normals: the distance carries the unseen kinds of
   anomaly, the head the kinds seen in training. Without labelled anomalies the score is
   u(x).

Each choice was kept because it won on the development split of the benchmark
(``--split dev``: a part of each training set, never the test part), with one set of
defaults for every dataset; the ablation is in docs/benchmarks/adbench.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from anoean.core.gaussian import GaussianScorer
from anoean.core.metrics import aucpr
from anoean.core.splits import holdout_split
from anoean.models.anoean.detector import pseudo_validation
from anoean.models.anoean.nets import ADAM_BETAS, make_generated
from anoean.models.anoean_plus.nets import (
    INPUT_KINDS,
    Discriminators,
    PlusScorer,
    make_ensemble_step,
)
from anoean.nn.blocks import build, init_parameters
from anoean.nn.generator import make_generator
from anoean.training.adversarial import Group, Losses
from anoean.training.neural import FitData, NeuralDetector, with_corrupted_copies

logger = logging.getLogger("anoean")

#: epochs (at least), steps (at least), mini-batch size and weight decay of the head: a
#: small table (100 rows) still gets HEAD_MIN_STEPS Adam steps
HEAD_EPOCHS = 30
HEAD_MIN_STEPS = 1000
HEAD_BATCH = 256
HEAD_WEIGHT_DECAY = 1e-4
#: the fusion weights ``fusion_weight="auto"`` chooses from, the fewest labelled anomalies
#: it chooses with, and the weight used below that. The grid stops at 0.25: the criterion
#: sees only the kinds of anomaly that are labelled, and would pick the head alone (0)
#: wherever it separates them, losing the kinds never seen in training, which only the
#: distance finds (tests/models/test_anoean_plus.py)
FUSION_GRID = (0.25, 0.5, 0.75, 1.0)
MIN_LABELLED_FOR_AUTO = 10
#: the most rows whose corrupted copies judge generate_anomalies="auto"'s choice
PSEUDO_ROWS = 4096
DEFAULT_FUSION_WEIGHT = 0.5


def _fit_head(
    head: nn.Module, f: torch.Tensor, y: np.ndarray, keep: np.ndarray, gen: torch.Generator
) -> list[float]:
    """Train ``head`` (initialised) on standardised features ``f``: class-weighted
    cross-entropy, labelled anomalies (y=1) against the kept unlabelled rows (``keep``: 1 or
    0 per row), for at least :data:`HEAD_EPOCHS` epochs and :data:`HEAD_MIN_STEPS` steps.
    Returns the mean loss per epoch."""
    dev = f.device
    yt = torch.from_numpy(y.astype(np.float32)).to(dev)
    keep_t = torch.from_numpy(keep.astype(np.float32)).to(dev)
    n = int(yt.numel())
    n_pos = float(yt.sum())
    w_pos = torch.tensor(float(keep[y == 0].sum()) / max(n_pos, 1.0), device=dev)
    steps_per_epoch = math.ceil(n / HEAD_BATCH)
    epochs = max(HEAD_EPOCHS, math.ceil(HEAD_MIN_STEPS / steps_per_epoch))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=HEAD_WEIGHT_DECAY)
    history = []
    head.train()
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).to(dev)
            total = torch.zeros((), device=dev)
            for s in range(0, n, HEAD_BATCH):
                idx = perm[s : s + HEAD_BATCH]
                logit = head(f[idx]).squeeze(-1)
                w = torch.where(yt[idx] > 0, w_pos, keep_t[idx])
                loss = (
                    F.binary_cross_entropy_with_logits(logit, yt[idx], reduction="none") * w
                ).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * idx.numel()
            history.append(float(total) / n)
    head.eval()
    return history


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and interquartile range (at least 1e-6, so a constant column divides safely)."""
    q25, med, q75 = np.percentile(values, [25, 50, 75])
    return float(med), float(max(q75 - q25, 1e-6))


class AnoEANPlus(ClassNamePrefixFeaturesOutMixin, TransformerMixin, NeuralDetector):
    """AnoEAN's encoders with trimmed training, an ensemble and a fused supervised head.

    Parameters
    ----------
    latent_dim : int, default=16
        Size d of each member's decision space (AnoEAN's default).
    n_members : int, default=1
        Encoders in the ensemble, each with its own discriminator, initialisation and
        Gaussian.
    trim : float in [0, 0.5), default=0.05
        Share of each batch's normal rows left out of the normal loss terms, and of the
        training normals left out of the second Gaussian fit. 0 turns trimming off.
    head : bool, default=True
        Train the supervised head when y holds labelled anomalies.
    head_inputs : str, default="x"
        What the head reads, joined by "+": "x" (the scaled row), "codes" (every member's
        code), "distances" (every member's normalised distance); e.g. "x+codes+distances".
    head_trim : float in [0, 0.5), default=0.1
        Share of the unlabelled training rows with the largest u(x) left out of the head's
        negatives (they are likely hidden anomalies). With ``fusion_weight="auto"`` and
        enough labelled anomalies, ``fit`` chooses between this and 0 (clean unlabelled rows).
    min_fusion_weight : float in [0, 1], default=0.25
        The smallest weight ``fusion_weight="auto"`` may choose. Raise it (0.5, 0.75) when
        kinds of anomaly never seen in training matter more than the labelled kinds.
    fusion : {"one_sided", "linear", "max"}, default="one_sided"
        How the head's normalised logit h enters the score. "one_sided": max(h, 0), so the
        head can raise a row's score (a kind of anomaly seen in training) but never lower it
        below a typical normal's: a kind never seen in training, on which the head's logit
        extrapolates to "very normal", keeps the ranking its distance gives it. "linear": h
        as it is. "max": the score is max(u, h), both in units of the held-out normals'
        spread, and ``fusion_weight`` is not used.
    fusion_weight : float in [0, 1] or "auto", default="auto"
        Share of the normalised distance in the fused score (1: the head is not used).
        "auto" chooses it inside ``fit`` by cross-fitting the head on the training rows, with
        the one-standard-error rule in favour of the distance (:meth:`_fusion_weight`); with
        fewer than 10 labelled anomalies it is 0.5.
    batch_size : int, default=200
        Normal rows per step (the paper's 200).
    lr : float, default=1e-3
        Adam learning rate of the encoders and discriminators (the paper's value).
    max_epochs : int, default=50
        Epochs of adversarial training (one epoch is one pass over the normal rows).
    patience : int or None, default=None
        Early stopping on the validation AUC-PR of the codes' distance to the prior's mean:
        of the validation anomalies when ``X_val`` holds some, else of corrupted copies of
        the validation normals (:func:`anoean.training.neural.corrupted_normals`). Off by
        default: with no labelled anomaly, patience=5 on that signal lost 1.2 points of mean
        AUC-PR on the development split (docs/generator.md).
    validation_fraction : float, default=0.2
        Share of the normal rows held out (for the normalisations and the threshold) when
        ``X_val`` is not given. Labelled anomalies are never held out.
    scaling : {"auto", "standard", "minmax", "none"}, default="auto"
        Input scaling fitted on the training rows ("auto": "standard").
    generate_anomalies : bool or "auto", default="auto"
        Train one learned anomaly generator per member against its encoder and
        discriminator (:mod:`anoean.nn.generator`), whose samples join the anomaly terms of
        L_D and L_E. "auto": when ``y`` holds no labelled anomaly, train with the generators
        and without, and keep the model whose held-out normals separate better from
        corrupted copies of them (``generator_selection_``; it costs a second fit). Not
        saved; scoring never
        needs it. The head is trained on labelled anomalies only (trained on the generators'
        rows, it lost on the development split).
    generator_weight : float >= 0, default=1.0
        Weight of the generated rows' terms in L_D and L_E (1: as heavy as the labelled
        anomalies' term).
    generator_margin : float >= 0, default=1.0
        The off-the-data margin of G's objective, in units of the normal rows' median
        nearest-neighbour distance (:func:`anoean.nn.generator.nearest_normal_margin`).
    contamination, target_false_alarm, random_state, device, verbose
        As for :class:`~anoean.models.anoean.detector.AnoEAN`.

    Attributes
    ----------
    scorer_ : PlusScorer
        The whole inference graph (scaling, encoders, Gaussians, head, fusion).
    gaussians_ : list of GaussianScorer
        Each member's Gaussian.
    has_head_ : bool
        Whether the head was trained (labelled anomalies were given and ``head=True``).
    head_history_ : list of float
        The head's mean training loss per epoch.
    fusion_weight_ : float
        The fusion weight used (1.0 without a head).
    fusion_scores_ : dict
        With ``fusion_weight="auto"`` and enough labelled anomalies: the cross-fitted AUROC
        of each candidate ("head_trim=T,w=W").
    head_trim_ : float
        The head trim used.
    generator_used_ : bool
        Whether the kept model trained with the anomaly generators.
    generator_selection_ : dict
        With ``generate_anomalies="auto"`` and no labelled anomaly: the AUROC of the held-out
        validation normals against corrupted copies of them
        (:func:`anoean.training.neural.corrupted_normals`) for the model trained with the
        generators ("generator") and without ("plain"); the higher is kept (a tie keeps
        "plain"). Empty otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from anoean import AnoEANPlus
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(400, 5)), rng.normal(4, 1, size=(20, 5))])
    >>> y = np.r_[np.zeros(400), np.ones(20)]
    >>> det = AnoEANPlus(max_epochs=3, n_members=2, random_state=0, device="cpu").fit(X, y)
    >>> s = det.anomaly_score(X)
    >>> bool(s[y == 1].mean() > s[y == 0].mean())
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **NeuralDetector._parameter_constraints,
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "trim": [Interval(Real, 0, 0.5, closed="left")],
        "head": ["boolean"],
        "head_inputs": [str],
        "fusion_weight": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "head_trim": [Interval(Real, 0, 0.5, closed="left")],
        "fusion": [StrOptions({"one_sided", "linear", "max"})],
        "min_fusion_weight": [Interval(Real, 0, 1, closed="both")],
        "encoder": [StrOptions({"mlp"})],
        "scaling": [StrOptions({"auto", "standard", "minmax", "none"})],
        "generate_anomalies": ["boolean", StrOptions({"auto"})],
        "generator_weight": [Interval(Real, 0, None, closed="left")],
        "generator_margin": [Interval(Real, 0, None, closed="left")],
    }
    _arch_param: ClassVar[str] = "encoder"
    _distributed_training: ClassVar[bool] = True
    scorer_: PlusScorer
    fusion_scores_: dict[str, float]

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        n_members: int = 1,
        trim: float = 0.05,
        head: bool = True,
        head_inputs: str = "x",
        head_trim: float = 0.1,
        fusion: str = "one_sided",
        min_fusion_weight: float = 0.25,
        fusion_weight: float | str = "auto",
        encoder: str = "mlp",
        batch_size: int = 200,
        lr: float = 1e-3,
        max_epochs: int = 50,
        patience: int | None = None,
        validation_fraction: float = 0.2,
        scaling: str = "auto",
        generate_anomalies: bool | str = "auto",
        generator_weight: float = 1.0,
        generator_margin: float = 1.0,
        contamination: float | None = None,
        target_false_alarm: float = 0.05,
        random_state: Any = None,
        device: str = "auto",
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.n_members = n_members
        self.trim = trim
        self.head = head
        self.head_inputs = head_inputs
        self.head_trim = head_trim
        self.fusion = fusion
        self.min_fusion_weight = min_fusion_weight
        self.fusion_weight = fusion_weight
        self.encoder = encoder
        self.batch_size = batch_size
        self.lr = lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scaling = scaling
        self.generate_anomalies = generate_anomalies
        self.generator_weight = generator_weight
        self.generator_margin = generator_margin
        self.contamination = contamination
        self.target_false_alarm = target_false_alarm
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the encoders run in float32
        return tags

    # ------------------------------------------------------------------ building
    def _head_inputs(self) -> tuple[str, ...]:
        kinds = tuple(part.strip() for part in str(self.head_inputs).split("+"))
        unknown = sorted(set(kinds) - set(INPUT_KINDS))
        if unknown or not kinds:
            raise ValueError(
                f"head_inputs={self.head_inputs!r}: {unknown} unknown; join any of "
                f"{', '.join(INPUT_KINDS)} with '+'"
            )
        return kinds

    def _scorer(self, head: bool, generator: torch.Generator) -> PlusScorer:
        p, d, k = int(self.input_shape_[0]), self.latent_dim, self.n_members
        kinds = self._head_inputs()
        scorer = build(lambda: PlusScorer(p, d, k, head, kinds), generator, self.device_)
        assert isinstance(scorer, PlusScorer)
        return scorer.reset_fitted()

    def _build_nets(self, generator: torch.Generator) -> nn.ModuleDict:
        scorer = self._scorer(bool(self.head), generator)
        discs = build(
            lambda: Discriminators(self.latent_dim, self.n_members), generator, self.device_
        )
        nets = nn.ModuleDict({"scorer": scorer, "discriminators": discs})
        if self.generator_used_:
            shape = self.input_shape_
            nets["generators"] = nn.ModuleList(
                build(lambda: make_generator(shape), generator, self.device_)
                for _ in range(self.n_members)
            )
        return nets

    def _architecture(self) -> dict[str, Any]:
        return {"scorer": self.scorer_.spec("scorer")}

    # ------------------------------------------------------------------- fitting
    def _split_data(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        rng: np.random.Generator,
    ) -> FitData:
        """Hold out normal rows only: every labelled anomaly trains the model."""
        if X_val is not None:
            assert y_val is not None
            rows = np.arange(X.shape[0])
            return FitData(X, y, X_val, y_val, X, rows, np.arange(X_val.shape[0]), "X_val")
        normal = np.flatnonzero(y == 0)
        if normal.size < 4:
            raise ValueError(
                f"AnoEANPlus needs at least 4 normal rows (y == 0) to hold some out; got "
                f"{normal.size}"
            )
        tr_n, va_n = holdout_split(
            np.zeros(normal.size, dtype=np.int64), self.validation_fraction, rng
        )
        tr = np.sort(np.concatenate([normal[tr_n], np.flatnonzero(y == 1)]))
        va = normal[va_n]
        return FitData(X[tr], y[tr], X[va], y[va], X, tr, va, "X (training data)")

    def _fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The fit template; with ``generate_anomalies="auto"`` and no labelled anomaly, run
        twice (with the generators and without) and keep the model under which the rows
        given to ``fit`` separate better from corrupted copies of them
        (:meth:`_pseudo_auroc`)."""
        labelled = bool((y == 1).any()) or (y_val is not None and bool((y_val == 1).any()))
        self.generator_selection_: dict[str, float] = {}
        if self.generate_anomalies != "auto" or labelled:
            # "auto" with labelled anomalies: no generator
            self._generate = self.generate_anomalies is True
            out = super()._fit(X, y, X_val, y_val)
            del self._pseudo_rows
            return out
        fits = {}
        for name, generate in (("generator", True), ("plain", False)):
            self._generate = generate
            scores = super()._fit(X, y, X_val, y_val)
            auc = self._pseudo_auroc()
            fits[name] = (auc, scores, self._fitted_state())
        keep = "generator" if fits["generator"][0] > fits["plain"][0] else "plain"
        _, scores, state = fits[keep]
        self.__dict__.update(state)
        self.generator_selection_ = {k: v[0] for k, v in fits.items()}
        self.fit_time_ = sum(v[2]["fit_time_"] for v in fits.values())
        del self._pseudo_rows
        return scores

    def _fitted_state(self) -> dict[str, Any]:
        """The attributes one run of the fit template set (to keep the chosen run's)."""
        return {
            k: v for k, v in self.__dict__.items() if k.endswith("_") and not k.startswith("__")
        }

    def _pseudo_auroc(self) -> float:
        """AUROC of the rows given to ``fit`` (0; at most :data:`PSEUDO_ROWS` of them) against
        corrupted copies of them (1) (:func:`anoean.training.neural.corrupted_normals`): how
        well the model has learned the rows' joint structure, without any label."""
        from sklearn.metrics import roc_auc_score

        rows, labels = with_corrupted_copies(self._pseudo_rows, self.seed_)
        n = self._pseudo_rows.shape[0]
        if n == rows.shape[0]:
            return 0.5  # fewer than 2 rows: no copies
        # the rows and their copies scored apart, as the batches they always were
        scores = np.r_[self._anomaly_score(rows[:n]), self._anomaly_score(rows[n:])]
        return float(roc_auc_score(labels, scores)) if np.isfinite(scores).all() else 0.0

    def _check_data(self, data: FitData) -> None:
        self.generator_used_ = bool(self._generate)

    def _scaler(self, nets: nn.ModuleDict) -> Any:
        return nets["scorer"].scaler

    def _param_groups(self, nets: nn.ModuleDict) -> dict[str, list[nn.Parameter]]:
        groups = {
            "d": list(nets["discriminators"].parameters()),
            "e": list(cast(PlusScorer, nets["scorer"]).encoders.parameters()),
        }
        if "generators" in nets:
            groups["g"] = list(nets["generators"].parameters())
        return groups

    def _adam_betas(self) -> tuple[float, float]:
        return ADAM_BETAS["mlp"]

    def _make_step(
        self,
        nets: nn.ModuleDict,
        data: FitData,
        groups: dict[str, Group],
        generator: torch.Generator,
    ) -> Callable[[torch.Tensor, torch.Tensor], Losses]:
        generated = None
        if "generators" in nets:
            scorer = cast(PlusScorer, nets["scorer"])
            generated = make_generated(
                groups["g"],
                nets["generators"],
                scorer.scaler,
                data.Xn,
                self.batch_size,
                generator,
                float(self.generator_margin),
                float(self.generator_weight),
            )
        return make_ensemble_step(
            cast(PlusScorer, nets["scorer"]),
            cast(Discriminators, nets["discriminators"]),
            groups["e"].optimizer,
            groups["d"].optimizer,
            data.Xn,
            data.Xa,
            float(self.trim),
            generator,
            generated,
        )

    def _make_evaluate(self, nets: nn.ModuleDict, data: FitData) -> Callable[[], float | None]:
        scorer, Xv, y_val = cast(PlusScorer, nets["scorer"]), data.Xv, data.y_val
        has_val_anomalies = data.has_val_anomalies
        if not has_val_anomalies and self.patience is not None:
            # early stopping asked for without labelled validation anomalies: the
            # validation normals against corrupted copies of them
            Xv, y_val = pseudo_validation(data, self.seed_, self.device_)
            has_val_anomalies = bool((y_val == 1).any())

        @torch.no_grad()
        def evaluate() -> float | None:
            if not has_val_anomalies:
                return None
            # distance to the prior's mean, summed over the members (no Gaussian yet)
            score = sum(z.double().pow(2).sum(1) for z in scorer.codes(Xv))
            s = torch.as_tensor(score).cpu().numpy()
            return aucpr(y_val, s) if np.isfinite(s).all() else float("nan")

        return evaluate

    def _kept(self, nets: nn.ModuleDict) -> dict[str, nn.Module]:
        return {"scorer": nets["scorer"]}

    def _name_unscorable_validation_row(self, nets: nn.ModuleDict, data: FitData) -> None:
        self.scorer_ = cast(PlusScorer, nets["scorer"]).eval()
        codes = self._encode(data.X_val)
        self._check_rows_finite(data.X_val, codes, data.val_rows, data.val_name)

    def _set_trained(self, nets: nn.ModuleDict) -> None:
        self.scorer_ = cast(PlusScorer, nets["scorer"]).eval()

    def _encode(self, X: np.ndarray) -> np.ndarray:
        """All members' codes, (n, K, d)."""
        k, d = self.n_members, self.latent_dim
        flat = self._batched(lambda x: torch.cat(self.scorer_.codes(x), 1), X, (k * d,))
        return flat.reshape(-1, k, d)

    def _after_training(self, data: FitData) -> None:
        """The Gaussians, the normalisations, the head and the fusion weight."""
        sc = self.scorer_
        normal = data.y == 0
        codes = self._encode(data.X[normal])
        self._check_rows_finite(data.X[normal], codes, data.train_rows[normal], "X (training data)")
        self.gaussians_ = []
        for k in range(self.n_members):
            g = GaussianScorer.fit(codes[:, k])
            if self.trim > 0 and codes.shape[0] >= 8:
                dist = g.distance(codes[:, k])
                keep = dist <= np.quantile(dist, 1.0 - self.trim)
                if keep.sum() >= 2:
                    g = GaussianScorer.fit(codes[keep, k])
            self.gaussians_.append(g)
        dev = self.device_
        with torch.no_grad():
            sc.mu.copy_(torch.from_numpy(np.stack([g.mu for g in self.gaussians_])))
            sc.whiten.copy_(torch.from_numpy(np.stack([g.whiten for g in self.gaussians_])))
            sc.weight.fill_(1.0)
        # normalise each member's log(1 + distance) on the held-out normals
        val_normal = data.X_val[data.y_val == 0]
        # the rows whose corrupted copies judge "auto"'s choice: every row given to fit (no
        # label is used), at most PSEUDO_ROWS of them
        rng = np.random.default_rng([self.seed_, 19])
        n_all = data.X_all.shape[0]
        pick = rng.choice(n_all, PSEUDO_ROWS, replace=False) if n_all > PSEUDO_ROWS else None
        self._pseudo_rows = data.X_all if pick is None else data.X_all[np.sort(pick)]
        dist_v = self._batched(
            lambda x: sc.distances(sc.codes(x)), val_normal, (self.n_members,), dtype=np.float64
        )
        stats = [_robust_scale(np.log1p(dist_v[:, k])) for k in range(self.n_members)]
        with torch.no_grad():
            sc.u_center.copy_(torch.tensor([c for c, _ in stats], dtype=torch.float64, device=dev))
            sc.u_scale.copy_(torch.tensor([s for _, s in stats], dtype=torch.float64, device=dev))
        self.has_head_ = bool(self.head) and bool((data.y == 1).any()) and self.fusion_weight != 1
        self.head_history_: list[float] = []
        self.fusion_weight_ = 1.0
        self.fusion_scores_ = {}
        self.head_trim_ = 0.0
        if self.has_head_:
            self._train_head(data, val_normal)
        elif sc.head is not None:
            sc.head = None  # no labelled anomaly: the score is u(x)

    def _train_head(self, data: FitData, val_normal: np.ndarray) -> None:
        """The supervised head (labelled anomalies against the other training rows), its
        normalisation on the held-out normals and the fusion weight."""
        sc = self.scorer_
        assert sc.head is not None
        dev = self.device_

        def parts(x: torch.Tensor) -> torch.Tensor:
            xs, codes, u = sc.parts(x)
            return torch.cat([sc.raw_head_features(xs, codes, u), u.mean(1, keepdim=True)], 1)

        both = self._batched(parts, data.X, (sc.head_in + 1,))
        y = data.y
        feats, u_train = torch.from_numpy(both[:, :-1]).to(dev), both[:, -1].astype(np.float64)
        shift = feats.mean(0)
        scale = feats.std(0) if feats.shape[0] > 1 else torch.ones_like(shift)
        scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
        with torch.no_grad():
            sc.f_shift.copy_(shift)
            sc.f_scale.copy_(scale)
        f = (feats - shift) / scale
        # the unlabelled rows the encoders place farthest out are likely hidden anomalies:
        # the head_trim share of them is left out of the head's negatives
        unlabelled = np.flatnonzero(y == 0)
        order = unlabelled[np.argsort(-u_train[unlabelled], kind="stable")]
        keeps = {}
        for t in sorted({0.0, float(self.head_trim)}):
            keep = np.ones(y.shape[0], dtype=np.float32)
            keep[order[: int(math.floor(t * unlabelled.size))]] = 0.0
            keeps[t] = keep
        gen = torch.Generator().manual_seed(self.seed_ + 2)
        weight, trim = self._fusion_weight(sc.head, f, y, keeps, u_train, gen)
        self.head_trim_ = trim
        init_parameters(sc.head, gen)
        self.head_history_ = _fit_head(sc.head, f, y, keeps[trim], gen)
        for p in sc.head.parameters():
            p.requires_grad_(False)

        h_val = self._batched(lambda x: sc.head_logit(*sc.parts(x)), val_normal, dtype=np.float64)
        center, spread = _robust_scale(h_val)
        if not math.isfinite(center):
            raise RuntimeError("the supervised head diverged (non-finite logits)")
        with torch.no_grad():
            sc.h_center.fill_(center)
            sc.h_scale.fill_(spread)
            sc.weight.fill_(weight)
            sc.h_floor.fill_(self._h_floor())
            sc.max_fusion.fill_(1.0 if self.fusion == "max" else 0.0)
        self.fusion_weight_ = weight

    def _h_floor(self) -> float:
        """The floor of the normalised logit: 0 (the normals' median) for the one-sided
        fusion, -inf for the linear one."""
        return 0.0 if self.fusion == "one_sided" else -math.inf

    def _fusion_weight(
        self,
        head: nn.Module,
        f: torch.Tensor,
        y: np.ndarray,
        keeps: dict[float, np.ndarray],
        u: np.ndarray,
        gen: torch.Generator,
    ) -> tuple[float, float]:
        """The fusion weight and the head's trim: ``fusion_weight`` and ``head_trim``, or,
        with "auto", the pair (w from :data:`FUSION_GRID` at or above ``min_fusion_weight``,
        head trim 0 or ``head_trim``) whose fused score of out-of-fold head logits has the
        best AUROC, labelled anomalies against the unlabelled rows (3 stratified folds of the
        training rows; a tie goes to the larger weight, then to the smaller trim).

        The unlabelled rows hide anomalies, so this AUROC is not the true one; but when the
        labelled anomalies are a random share of all of them, an out-of-fold score ranks the
        hidden ones as it ranks the labelled ones, and the AUROC is the true one times a
        constant plus a constant: it ranks the candidates as the true AUROC would. So the
        data say whether the unlabelled rows hide anomalies (the trim then pays) or are clean
        (as in the paper's protocol, where leaving normals out of the negatives costs).
        The criterion sees only the labelled kinds of anomaly: where the head separates them
        well, it leans on the head, and kinds never seen in training, which only the distance
        finds, then weigh less (``min_fusion_weight`` bounds this). With fewer than
        :data:`MIN_LABELLED_FOR_AUTO` labelled anomalies the estimate is too noisy:
        :data:`DEFAULT_FUSION_WEIGHT` and ``head_trim`` are used.
        """
        self.fusion_scores_ = {}
        trim = float(self.head_trim)
        if self.fusion == "max":
            return 1.0, trim  # the weight is unused by the max fusion
        if self.fusion_weight != "auto":
            return float(self.fusion_weight), trim
        if int((y == 1).sum()) < MIN_LABELLED_FOR_AUTO:
            return DEFAULT_FUSION_WEIGHT, trim
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        folds = list(
            StratifiedKFold(3, shuffle=True, random_state=self.seed_ % (2**31 - 1)).split(
                np.zeros(y.shape[0]), y
            )
        )
        grid = [w for w in FUSION_GRID if w >= self.min_fusion_weight]
        candidates = []
        unl = y == 0
        for t, keep in keeps.items():
            oof = np.empty(y.shape[0], dtype=np.float64)
            for tr, te in folds:
                init_parameters(head, gen)
                _fit_head(head, f[tr], y[tr], keep[tr], gen)
                with torch.no_grad():
                    oof[te] = head(f[te]).squeeze(-1).double().cpu().numpy()
            center, spread = _robust_scale(oof[unl])
            h = np.maximum((oof - center) / spread, self._h_floor())
            for w in grid:
                auc = float(roc_auc_score(y, w * u + (1 - w) * h))
                self.fusion_scores_[f"head_trim={t:g},w={w:g}"] = auc
                candidates.append((auc, w, -t))
        _, w, neg_t = max(candidates)
        return float(w), float(-neg_t)

    # ------------------------------------------------------------------- scoring
    def _anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._batched(self.scorer_, X, dtype=np.float64)

    def _score_torch(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.scorer_

    @property
    def _n_features_out(self) -> int:
        """Columns of :meth:`transform` (every member's code in turn):
        ``get_feature_names_out`` names them "anoeanplus0", "anoeanplus1", ..., and
        ``set_output(transform="pandas")`` uses those names."""
        return int(self.n_members * self.latent_dim)

    def transform(self, X: Any) -> np.ndarray:
        """Every member's latent code, side by side: shape (n, n_members * latent_dim)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._encode(X).reshape(X.shape[0], -1)

    # --------------------------------------------------------------- persistence
    def _extra_state(self) -> dict[str, Any]:
        return {
            "generator_used_": self.generator_used_,
            "generator_selection_": self.generator_selection_,
            "has_head_": self.has_head_,
            "head_history_": self.head_history_,
            "fusion_weight_": self.fusion_weight_,
            "fusion_scores_": self.fusion_scores_,
            "head_trim_": self.head_trim_,
        }

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self._module_arrays("scorer", self.scorer_)

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.has_head_ = bool(state["has_head_"])
        self.generator_used_ = bool(state.get("generator_used_", False))
        self.generator_selection_ = {
            str(k): float(v) for k, v in state.get("generator_selection_", {}).items()
        }
        self.head_history_ = [float(v) for v in state.get("head_history_", [])]
        self.fusion_weight_ = float(state.get("fusion_weight_", 1.0))
        self.head_trim_ = float(state.get("head_trim_", 0.0))
        self.fusion_scores_ = {str(k): float(v) for k, v in state.get("fusion_scores_", {}).items()}
        scorer = self._scorer(self.has_head_, torch.Generator().manual_seed(0))
        self._load_module(scorer, "scorer", arrays)
        self.scorer_ = scorer.eval()
        self.gaussians_ = []
        for k in range(self.n_members):
            # Sigma^-1 = W W^T: Sigma is not saved, it follows from the whitening matrix
            w = scorer.whiten[k].cpu().numpy()
            cov = np.linalg.pinv(w @ w.T)
            self.gaussians_.append(GaussianScorer(mu=scorer.mu[k].cpu().numpy(), cov=cov, whiten=w))
