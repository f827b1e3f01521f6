"""Methods of the paper's comparison, with the validation grids used to select them.

The paper selects every model's hyperparameters on the validation AUC-PR; so do we, over the
small grids below (the baselines' grids are documented in :mod:`anoean.baselines`). ``quick``
runs use each method's defaults only, with a smaller epoch budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from anoean.core.registry import METHODS as _REGISTRY

#: display names, in the paper's order (from the registry)
DISPLAY = {name: m.display for name, m in _REGISTRY.items()}

#: the paper's methods: what the reproduction runs by default
METHODS = tuple(name for name, m in _REGISTRY.items() if m.paper)
#: every method the reproduction takes with ``--methods`` (AnoEANPlus beyond the paper)
ALL_METHODS = tuple(DISPLAY)
NEURAL = {name for name, m in _REGISTRY.items() if m.neural}
GANS = ("anogan", "egbad", "alad")
#: methods with an MLP encoder only (no conv encoder for images)
TABLE_ONLY = ("anoeanplus",)

#: budgets of the GAN baselines in full-mode image runs ("reduced" is the default)
IMAGE_GAN_BUDGETS = ("reduced", "original")
#: the "reduced" budget. With the originals' DCGAN nets one MNIST epoch (5,000 normals) costs
#: 31 / 33 / 69 s on one core for AnoGAN / EGBAD / ALAD, and AnoGAN's 100-step latent search
#: about 0.3 s per image, so the originals' settings (3 learning rates x up to 30 epochs) take
#: hours per run. The reduced budget trains one learning rate, the DCGAN rate 2e-4 (Radford et
#: al., 2016), for 4 epochs (200 Adam steps at batch 100), keeps the epoch of best validation
#: AUC-PR, and shortens AnoGAN's search to 20 steps. Its numbers are what that budget achieves,
#: a lower bound for these methods, and the reports mark them (docs/results.md).
REDUCED_IMAGE_GAN: dict[str, Any] = {"max_epochs": 4, "lr": 2e-4}
REDUCED_ANOGAN_SEARCH = 20


@dataclass(frozen=True)
class MethodSpec:
    name: str
    grid: dict[str, list[Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    #: "reduced" or "original" for a GAN baseline in a full-mode image run, else None
    budget: str | None = None

    def estimator_class(self) -> type:
        return _REGISTRY[self.name].load_class()

    def configs(self) -> Iterator[dict[str, Any]]:
        """Every full configuration (fixed settings plus one point of the grid)."""
        from anoean.experiments.search import grid_configs

        for cfg in grid_configs(self.grid):
            yield {**self.fixed, **cfg}


def check_image_gan_budget(value: str) -> None:
    if value not in IMAGE_GAN_BUDGETS:
        raise ValueError(
            f"unknown image_gan_budget {value!r}; choose from {', '.join(IMAGE_GAN_BUDGETS)}"
        )


def method_spec(
    name: str,
    *,
    images: bool,
    quick: bool,
    image_gan_budget: str = "reduced",
    device: str = "cpu",
) -> MethodSpec:
    """The spec of ``name`` for an image or tabular experiment, full or quick.

    ``device`` is where the neural methods train and score ("cpu", "cuda", "cuda:N"); the
    kernel baselines run on the CPU whatever it says.

    ``image_gan_budget`` applies to the GAN baselines in full-mode image runs only:
    ``"reduced"`` (:data:`REDUCED_IMAGE_GAN`) or ``"original"`` (the learning-rate grid, 30
    epochs and AnoGAN's 100-step search; hours per run on a CPU).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(ALL_METHODS)}")
    check_image_gan_budget(image_gan_budget)
    budget = image_gan_budget if (images and not quick and name in GANS) else None
    fixed: dict[str, Any] = {}
    if images and name in TABLE_ONLY:
        raise ValueError(f"{DISPLAY[name]} scores tables only: it cannot run on images")
    if name in NEURAL and not _REGISTRY[name].paper:
        # beyond the paper: the method's own defaults (its epochs, its stopping rule)
        fixed.update({str(_REGISTRY[name].arch_param): "mlp", "device": device})
        if quick:
            fixed["max_epochs"] = 10
        return MethodSpec(name=name, fixed=fixed)
    if name in NEURAL:
        arch_key = str(_REGISTRY[name].arch_param)
        fixed[arch_key] = "conv" if images else "mlp"
        fixed["device"] = device
        if quick:
            # a smoke test: the GAN baselines' conv nets cost 10-35x AnoEAN's per epoch on
            # MNIST, so quick runs give them one image epoch to stay within minutes
            gan_on_images = images and name != "anoean"
            fixed["max_epochs"] = 1 if gan_on_images else (3 if images else 10)
        else:
            fixed["max_epochs"] = 30 if images else 100
        fixed["patience"] = 10
    if name == "anogan":
        # the latent search dominates AnoGAN's cost; quick runs shorten it (documented)
        fixed["n_search_iter"] = 10 if quick else (100 if images else 500)
        if not quick:
            # the per-epoch early-stopping check searches the whole validation set; a search
            # a tenth as long serves as its proxy (docs/baselines.md); scores use the full one
            fixed["val_search_iter"] = fixed["n_search_iter"] // 10
    grid: dict[str, list[Any]] = {}
    if not quick:
        grid = {k: list(v) for k, v in _REGISTRY[name].grid.items()}
    if budget == "reduced":
        grid = {}
        fixed.update(REDUCED_IMAGE_GAN)
        if name == "anogan":
            fixed["n_search_iter"] = REDUCED_ANOGAN_SEARCH
            fixed["val_search_iter"] = REDUCED_ANOGAN_SEARCH // 10
    return MethodSpec(name=name, grid=grid, fixed=fixed, budget=budget)
