"""The one table of methods: every detector the package ships, once.

``load`` (which class a model file names), the CLI (``--method``, ``anoean methods``), the
experiments (display names, grids, which methods are neural) and export (which engines a
model can use) all read :data:`METHODS`. A new detector is one entry here plus its module.

Classes are named by import path and imported on first use, so that reading the table (and
loading a kernel model) never imports torch.

Grids (the reasons are in docs/baselines.md): AnoEAN's latent size; ``nu`` x ``gamma`` for
the one-class SVM and ``C`` x ``gamma`` for the two-class SVM (on standardised tables
"scale" is 1 / p); the Adam learning rate for the GAN baselines (the originals' 1e-5 is the
smallest value; early stopping already chooses the number of epochs).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

_GAMMAS: list[Any] = ["scale", 0.01, 0.1, 1.0]
_LRS: list[Any] = [1e-5, 1e-4, 1e-3]


@dataclass(frozen=True)
class MethodInfo:
    """One detector: its CLI name, class, architecture parameter, display name, grid."""

    name: str
    #: "module:Class"
    target: str
    display: str
    #: the parameter that chooses "mlp" (tables) or "conv" (images); None for kernels
    arch_param: str | None = None
    #: the validation grid of the paper's protocol (parameter -> values)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    #: runs without torch when its network is an MLP: scored by anoean.serve.numpy_scorer
    #: and exported as an ONNX graph (anoean.serve.onnx), which read the architecture the
    #: model file records; the numpy and ONNX engines of anoean.serve.engine accept it
    numpy_exportable: bool = False
    #: one of the paper's methods: the reproduction runs it by default (the others only when
    #: named with ``--methods``)
    paper: bool = True

    @property
    def neural(self) -> bool:
        return self.arch_param is not None

    @property
    def class_name(self) -> str:
        return self.target.partition(":")[2]

    def load_class(self) -> type:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


#: in the paper's order (its tables list the methods so)
METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "ocsvm",
            "anoean.models.kernel.ocsvm:OCSVM",
            "OCSVM",
            grid={"nu": [0.01, 0.05, 0.1, 0.5], "gamma": list(_GAMMAS)},
        ),
        MethodInfo(
            "svm",
            "anoean.models.kernel.svm:SVM",
            "SVM",
            grid={"C": [0.1, 1.0, 10.0, 100.0], "gamma": list(_GAMMAS)},
        ),
        MethodInfo("anogan", "anoean.models.anogan:AnoGAN", "AnoGAN", "network", {"lr": _LRS}),
        MethodInfo("egbad", "anoean.models.egbad:EGBAD", "EGBAD", "network", {"lr": _LRS}),
        MethodInfo("alad", "anoean.models.alad:ALAD", "ALAD", "network", {"lr": _LRS}),
        MethodInfo(
            "anoean",
            "anoean.models.anoean.detector:AnoEAN",
            "AnoEAN",
            "encoder",
            {"latent_dim": [8, 16, 32]},
            numpy_exportable=True,
        ),
        # beyond the paper: not in its tables, so the reproduction runs it only when asked
        MethodInfo(
            "anoeanplus",
            "anoean.models.anoean_plus.detector:AnoEANPlus",
            "AnoEANPlus",
            "encoder",
            numpy_exportable=True,
            paper=False,
        ),
    )
}


def method(name: str) -> MethodInfo:
    """The entry of ``name`` (case-insensitive), with a clear error naming the choices."""
    key = name.strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[key]


def by_class(class_name: str) -> MethodInfo | None:
    """The entry whose class is ``class_name`` (as a model's ``config.json`` records it)."""
    for m in METHODS.values():
        if m.class_name == class_name:
            return m
    return None


def register(
    cls: type,
    *,
    name: str | None = None,
    display: str | None = None,
    arch_param: str | None = None,
    grid: dict[str, list[Any]] | None = None,
    numpy_exportable: bool = False,
) -> MethodInfo:
    """Add a detector class to :data:`METHODS` (name: its lower-case class name by
    default), so that ``anoean.load`` reads its model files and ``--method`` takes it.
    The package's own detectors are listed above; this is for a user's own."""
    entry = MethodInfo(
        name=(name or cls.__name__).lower(),
        target=f"{cls.__module__}:{cls.__qualname__}",
        display=display or cls.__name__,
        arch_param=arch_param,
        grid=dict(grid or {}),
        numpy_exportable=numpy_exportable,
        paper=False,
    )
    clash = by_class(cls.__name__)
    if entry.name in METHODS or (clash is not None and clash.target != entry.target):
        raise ValueError(f"a method {entry.name!r} or a class {cls.__name__!r} is registered")
    METHODS[entry.name] = entry
    return entry
