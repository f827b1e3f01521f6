"""The paper's published numbers, as reference data for the reproduction report.

Gherbi, Hanczar, Janodet, Klaudel, "Construction d'espace latent pour la détection
d'anomalies par apprentissage adversarial" (the French text of "An Encoding Adversarial
Network for Anomaly Detection", ACML 2019, PMLR 101:188-203), Table 1 (NSL-KDD) and Table 2
(KDD99). Every published cell is here, in percent, as printed (one decimal).

The paper's columns map onto our metric keys (:func:`anoean.core.metrics.evaluate`) as
follows; section 3.1 and the text before the tables define them:

* "AUC" -> ``aucpr``: "aire sous la courbe précision-rappel", the area under the
  precision-recall curve (ours is its average-precision estimate);
* "F1" -> ``best_f1``: "la mesure F1 optimale", the best F1 over thresholds;
* "FA" -> ``false_alarm``: "la proportion de fausses anomalies par rapport au nombre
  d'anomalies détectées", i.e. 1 - precision, at the best-F1 threshold ("le taux de fausse
  alarme et le rappel associé");
* "Rappel" -> ``recall``: the share of the test anomalies detected, at that threshold.

The paper gives one value per cell and no spread; it does not say over how many runs.
"""

from __future__ import annotations

#: the paper's table of each experiment
TABLES = {"nsl-kdd": "Table 1", "kdd99": "Table 2"}

#: the paper's column heading of each of our metric keys
PAPER_COLUMNS = {"aucpr": "AUC", "best_f1": "F1", "false_alarm": "FA", "recall": "Rappel"}

#: table -> method -> metric -> value in percent
PAPER: dict[str, dict[str, dict[str, float]]] = {
    "nsl-kdd": {
        "anogan": {"aucpr": 79.6, "best_f1": 80.5, "false_alarm": 19.6, "recall": 79.6},
        "egbad": {"aucpr": 96.0, "best_f1": 92.1, "false_alarm": 8.0, "recall": 92.2},
        "alad": {"aucpr": 94.7, "best_f1": 87.8, "false_alarm": 13.5, "recall": 89.2},
        "ocsvm": {"aucpr": 94.1, "best_f1": 87.9, "false_alarm": 13.1, "recall": 89.0},
        "anoean": {"aucpr": 97.5, "best_f1": 94.8, "false_alarm": 5.0, "recall": 94.6},
        "svm": {"aucpr": 97.3, "best_f1": 93.3, "false_alarm": 8.5, "recall": 95.2},
    },
    "kdd99": {
        "anogan": {"aucpr": 72.9, "best_f1": 73.4, "false_alarm": 23.3, "recall": 70.1},
        "egbad": {"aucpr": 89.1, "best_f1": 93.9, "false_alarm": 5.5, "recall": 93.3},
        "alad": {"aucpr": 95.4, "best_f1": 96.6, "false_alarm": 3.6, "recall": 96.6},
        "ocsvm": {"aucpr": 86.0, "best_f1": 94.3, "false_alarm": 7.4, "recall": 96.2},
        "anoean": {"aucpr": 98.9, "best_f1": 97.6, "false_alarm": 3.9, "recall": 99.0},
        "svm": {"aucpr": 98.6, "best_f1": 98.7, "false_alarm": 0.6, "recall": 97.6},
    },
}

#: whether a larger value of the metric is better (the false-alarm rate: smaller is better)
HIGHER_IS_BETTER = {"aucpr": True, "best_f1": True, "false_alarm": False, "recall": True}

#: the paper's qualitative claim for Figure 3 (MNIST n-vs-m)
FIG3_CLAIM = "AnoEAN has the best AUC-PR of all methods at every number n of normal digits"


def paper_value(table: str, method: str, metric: str) -> float | None:
    """The paper's value in percent of ``metric`` for ``method`` in ``table`` (an experiment
    name: "nsl-kdd" or "kdd99"), or None where the paper has none.

    Examples
    --------
    >>> paper_value("kdd99", "svm", "false_alarm")
    0.6
    >>> paper_value("mnist-nvm", "anoean", "aucpr") is None
    True
    """
    return PAPER.get(table, {}).get(method, {}).get(metric)
