"""The paper's baselines behind the same detector interface as :class:`anoean.AnoEAN`
(public path; they live in :mod:`anoean.models`).

* :class:`OCSVM`: one-class RBF SVM on normal data;
* :class:`SVM`: two-class RBF SVM on normals plus labelled anomalies, balanced class weights;
* :class:`AnoGAN`: GAN + latent search at test time (Schlegl et al. 2017);
* :class:`EGBAD`: BiGAN, reconstruction + feature-matching score (Zenati et al. 2018);
* :class:`ALAD`: BiGAN with cycle-consistency discriminators (Zenati et al. 2018).

The kernel baselines import neither torch nor the GAN baselines: each class is imported on
first use. Hyperparameter grids and the validation-AUC-PR search:
:mod:`anoean.experiments.search`. Design, faithfulness notes and benchmark figures:
docs/baselines.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ALAD", "EGBAD", "OCSVM", "SVM", "AnoGAN"]

_WHERE = {
    "OCSVM": "anoean.models.kernel.ocsvm",
    "SVM": "anoean.models.kernel.svm",
    "AnoGAN": "anoean.models.anogan",
    "EGBAD": "anoean.models.egbad",
    "ALAD": "anoean.models.alad",
}

if TYPE_CHECKING:
    from anoean.models.alad import ALAD
    from anoean.models.anogan import AnoGAN
    from anoean.models.egbad import EGBAD
    from anoean.models.kernel.ocsvm import OCSVM
    from anoean.models.kernel.svm import SVM


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    if name == "search":  # the old module path of the hyperparameter search
        return importlib.import_module("anoean.experiments.search")
    raise AttributeError(f"module 'anoean.baselines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "search"])
