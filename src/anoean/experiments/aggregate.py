"""Run records grouped and summarised for the tables and figures of
:mod:`anoean.experiments.tables` and :mod:`anoean.experiments.figures`: records by
(experiment, case, method), mean ± std in percent, the methods present in display order,
their labels (marked under the reduced budget) and the per-case AUC-PR matrix."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from anoean.experiments.methods import DISPLAY


def _group(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["experiment"], r["case"], r["method"])].append(r)
    return groups


def _ms(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation in percent; the deviation is NaN for a single value."""
    a = 100.0 * np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")


def _pm(mean: float, std: float) -> str:
    """'mean ± std', or the mean alone when there is no spread to show (one run)."""
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def _methods_in(records: list[dict[str, Any]]) -> list[str]:
    present = {r["method"] for r in records}
    return [m for m in DISPLAY if m in present]


#: the mark of a method run under the reduced budget (see :data:`BUDGET_NOTE`)
REDUCED_MARK = "†"
BUDGET_NOTE = (
    f"{REDUCED_MARK} Reduced budget (`--image-gan-budget reduced`, the default): the GAN "
    "baselines on MNIST train one learning rate (2e-4) for 4 epochs, keep the epoch of best "
    "validation AUC-PR, and AnoGAN searches the latent space for 20 steps; the originals' "
    "settings take hours per run on a CPU. Their numbers are what that budget achieves, not "
    "the methods' best."
)


def _reduced(records: list[dict[str, Any]], method: str) -> bool:
    return any(
        r["method"] == method and (r.get("config") or {}).get("budget") == "reduced"
        for r in records
    )


def _label(records: list[dict[str, Any]], method: str) -> str:
    """The display name, marked when (some of) the method's runs had the reduced budget."""
    return DISPLAY[method] + (REDUCED_MARK if _reduced(records, method) else "")


def _labels_with_seeds(records: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Labels, with each method's number of seeds when the methods do not all have the same."""
    seeds = {m: len({r["seed"] for r in records if r["method"] == m}) for m in methods}
    same = len(set(seeds.values())) <= 1
    return [
        _label(records, m) + ("" if same else f" ({seeds[m]} seed{'s' * (seeds[m] != 1)})")
        for m in methods
    ]


def _case_matrix(records, experiment, key_of_case):  # type: ignore[no-untyped-def]
    recs = [r for r in records if r["experiment"] == experiment]
    cases = sorted({r["case"] for r in recs}, key=key_of_case)
    methods = _methods_in(recs)
    groups = _group(recs)
    mean = np.full((len(cases), len(methods)), np.nan)
    std = np.full_like(mean, np.nan)
    for i, c in enumerate(cases):
        for j, m in enumerate(methods):
            rs = groups.get((experiment, c, m), [])
            if rs:
                mean[i, j], std[i, j] = _ms([r["metrics"]["aucpr"] for r in rs])
    return cases, methods, mean, std


def _num(case: str) -> int:
    return int("".join(ch for ch in case if ch.isdigit()) or 0)
