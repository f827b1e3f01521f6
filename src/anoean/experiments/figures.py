"""Figures 2 and 3 from ``runs.jsonl`` records, drawn with matplotlib (imported lazily, the
``plot`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anoean.core.modelfile import atomic_output
from anoean.experiments.aggregate import REDUCED_MARK, _case_matrix, _labels_with_seeds, _num


def figure(records: list[dict[str, Any]], experiment: str, path: Path) -> Path | None:
    """Figure 2 (grouped bars per digit) or Figure 3 (AUC-PR against n)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError("figures need matplotlib: pip install 'anoean[plot]'") from exc
    cases, methods, mean, std = _case_matrix(records, experiment, _num)
    if not cases:
        return None
    labels = _labels_with_seeds([r for r in records if r["experiment"] == experiment], methods)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if experiment == "mnist-1vall":
        _digit_bars(ax, cases, mean, std, labels)
    else:
        _curves_in_n(ax, cases, mean, std, labels)
    ax.set_ylabel("AUC-PR (%)")
    ax.set_ylim(0, 102)
    # below the axes, so that no curve or bar hides behind it
    ax.legend(
        ncol=min(6, len(methods)),
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        frameon=False,
    )
    ax.grid(axis="y", alpha=0.3)
    if any(REDUCED_MARK in lab for lab in labels):
        ax.text(
            0.0,
            -0.25,
            f"{REDUCED_MARK} reduced budget (4 epochs, lr 2e-4): a lower bound for that method",
            transform=ax.transAxes,
            fontsize=7,
        )
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _digit_bars(
    ax: Any, cases: list[str], mean: np.ndarray, std: np.ndarray, labels: list[str]
) -> None:
    """Figure 2: per normal digit, one bar per method (mean AUC-PR, std as error bar)."""
    width = 0.8 / len(labels)
    x = np.arange(len(cases))
    for j in range(len(labels)):
        ax.bar(
            x + j * width,
            mean[:, j],
            width,
            yerr=np.nan_to_num(std[:, j]),
            capsize=2,
            label=labels[j],
        )
    ax.set_xticks(x + 0.4 - width / 2, [str(_num(c)) for c in cases])
    ax.set_xlabel("normal digit")
    ax.set_title("MNIST, one digit normal vs all others (cf. the paper's Figure 2)")


def _curves_in_n(
    ax: Any, cases: list[str], mean: np.ndarray, std: np.ndarray, labels: list[str]
) -> None:
    """Figure 3: per method, mean AUC-PR against the number n of normal digits."""
    ns = [_num(c) for c in cases]
    for j in range(len(labels)):
        ax.errorbar(
            ns,
            mean[:, j],
            yerr=np.nan_to_num(std[:, j]),
            marker="o",
            capsize=3,
            label=labels[j],
        )
    ax.set_xticks(ns)
    ax.set_xlabel("number n of normal digits")
    ax.set_title("MNIST, n digits normal vs the others (cf. the paper's Figure 3)")
