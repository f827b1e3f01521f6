"""The paper's published numbers, as reference data for the reproduction report.

Gherbi, Hanczar, Janodet, Klaudel, "An Encoding Adversarial Network for Anomaly Detection",
ACML 2019, PMLR 101:188-203. Values are percentages.

Only the figures we could verify are filled in: AnoEAN's mean AUC-PR on NSL-KDD (Table 1,
97.5) and KDD99 (Table 2, 98.9), as quoted in our project's reproduction targets. The paper's
other cells (the baselines' AUC/F1/FA/R and AnoEAN's F1/FA/R) were not available offline when
this was written; they are ``None`` and show as "n/a" in the tables rather than being guessed.
"""

from __future__ import annotations

#: table -> method -> metric -> value in percent (None: not available here)
PAPER: dict[str, dict[str, dict[str, float | None]]] = {
    "nsl-kdd": {
        "anoean": {"aucpr": 97.5, "best_f1": None, "false_alarm": None, "recall": None},
    },
    "kdd99": {
        "anoean": {"aucpr": 98.9, "best_f1": None, "false_alarm": None, "recall": None},
    },
}

#: the paper's qualitative claim for Figure 3 (MNIST n-vs-m)
FIG3_CLAIM = "AnoEAN has the best AUC-PR of all methods at every number n of normal digits"


def paper_value(table: str, method: str, metric: str) -> float | None:
    return PAPER.get(table, {}).get(method, {}).get(metric)
