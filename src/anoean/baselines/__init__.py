"""The paper's baselines behind the same detector interface as :class:`anoean.AnoEAN`.

* :class:`OCSVM`: one-class RBF SVM on normal data;
* :class:`SVM`: two-class RBF SVM on normals plus labelled anomalies, balanced class weights;
* :class:`AnoGAN`: GAN + latent search at test time (Schlegl et al. 2017);
* :class:`EGBAD`: BiGAN, reconstruction + feature-matching score (Zenati et al. 2018);
* :class:`ALAD`: BiGAN with cycle-consistency discriminators (Zenati et al. 2018).

Hyperparameter grids and the validation-AUC-PR search: :mod:`anoean.baselines.search`.
Design, faithfulness notes and benchmark figures: docs/baselines.md.
"""

from .alad import ALAD
from .anogan import AnoGAN
from .egbad import EGBAD
from .ocsvm import OCSVM
from .svm import SVM

__all__ = ["ALAD", "EGBAD", "OCSVM", "SVM", "AnoGAN"]
