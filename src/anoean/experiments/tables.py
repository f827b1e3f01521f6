"""Tables 1 and 2, Figures 2 and 3, and a report against the paper, from ``runs.jsonl``.

The figures are drawn in :mod:`anoean.experiments.figures`; the grouping of the run records
both use is in :mod:`anoean.experiments.aggregate`.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from anoean.experiments.aggregate import (
    BUDGET_NOTE,
    REDUCED_MARK,
    _case_matrix,
    _group,
    _label,
    _labels_with_seeds,
    _methods_in,
    _ms,
    _num,
    _pm,
    _reduced,
)
from anoean.experiments.figures import figure
from anoean.experiments.methods import DISPLAY
from anoean.experiments.methods import METHODS as PAPER_METHODS
from anoean.experiments.reference import FIG3_CLAIM, paper_value
from anoean.experiments.store import RUNS_FILE, read_runs

logger = logging.getLogger("anoean")

METRICS = ("aucpr", "best_f1", "false_alarm", "recall")
HEAD = {"aucpr": "AUC-PR", "best_f1": "F1", "false_alarm": "FA", "recall": "R"}


def kdd_table(records: list[dict[str, Any]], experiment: str) -> str:
    """Markdown table: per method, mean ± std over seeds of each metric, beside the paper."""
    recs = [r for r in records if r["experiment"] == experiment]
    if not recs:
        return f"_No runs for {experiment}._\n"
    groups = _group(recs)
    cols = " | ".join(f"{HEAD[m]} (ours)" + f" | {HEAD[m]} (paper)" for m in METRICS)
    lines = [f"| method | seeds | {cols} | fit s |", "|---" * (3 + 2 * len(METRICS)) + "|"]
    for m in _methods_in(recs):
        rs = groups[(experiment, "all", m)]
        cells = []
        for k in METRICS:
            mean, std = _ms([r["metrics"][k] for r in rs])
            ref = paper_value(experiment, m, k)
            cells.append(f"{_pm(mean, std)} | {'n/a' if ref is None else f'{ref:.1f}'}")
        fit = np.mean([r["fit_s"] for r in rs])
        lines.append(f"| {DISPLAY[m]} | {len(rs)} | {' | '.join(cells)} | {fit:.1f} |")
    return "\n".join(lines) + "\n"


def group_table(records: list[dict[str, Any]]) -> str:
    """Markdown: per experiment and method, AUROC and AUC-PR on the test normals plus only
    the anomaly classes seen in training, or only those never seen (mean ± std over seeds)."""
    recs = [r for r in records if r.get("metrics_by_group")]
    if not recs:
        return "_No run records per-group metrics._\n"
    lines = [
        "| experiment | method | seeds | unseen anomalies / run | AUROC seen | AUROC unseen "
        "| AUC-PR seen | AUC-PR unseen |",
        "|---" * 8 + "|",
    ]
    groups = _group(recs)
    exps = list(dict.fromkeys(r["experiment"] for r in recs))
    for e in exps:
        cases = list(dict.fromkeys(r["case"] for r in recs if r["experiment"] == e))
        for m in _methods_in([r for r in recs if r["experiment"] == e]):
            rs = [r for c in cases for r in groups.get((e, c, m), [])]

            def cell(g: str, k: str, rs: list[dict[str, Any]] = rs) -> str:
                vals = [r["metrics_by_group"][g][k] for r in rs if g in r["metrics_by_group"]]
                if not vals:
                    return "–"
                mean, std = _ms(vals)
                # a group can be missing from some runs' test sets (KDD99's rare R2L/U2R)
                part = f" ({len(vals)} of {len(rs)} runs)" if len(vals) < len(rs) else ""
                return f"{_pm(mean, std)}{part}"

            n_unseen = [r["metrics_by_group"].get("unseen", {}).get("n_anomalies", 0) for r in rs]
            lines.append(
                f"| {e} | {_label(rs, m)} | {len({r['seed'] for r in rs})} | "
                f"{np.mean(n_unseen):.1f} | {cell('seen', 'auroc')} | {cell('unseen', 'auroc')} "
                f"| {cell('seen', 'aucpr')} | {cell('unseen', 'aucpr')} |"
            )
    return "\n".join(lines) + "\n"


def _case_table(records: list[dict[str, Any]], experiment: str, label: str) -> str:
    cases, methods, mean, std = _case_matrix(records, experiment, _num)
    if not cases:
        return f"_No runs for {experiment}._\n"
    recs = [r for r in records if r["experiment"] == experiment]
    lines = [f"| {label} | " + " | ".join(_labels_with_seeds(recs, methods)) + " |"]
    lines.append("|---" * (len(methods) + 1) + "|")
    for i, c in enumerate(cases):
        best = np.nanmax(mean[i])
        cells = [
            (
                f"**{_pm(mean[i, j], std[i, j])}**"
                if mean[i, j] == best
                else _pm(mean[i, j], std[i, j])
            )
            if not np.isnan(mean[i, j])
            else "–"
            for j in range(len(methods))
        ]
        lines.append(f"| {_num(c)} | " + " | ".join(cells) + " |")
    if any(_reduced(recs, m) for m in methods):
        lines += ["", BUDGET_NOTE]
    return "\n".join(lines) + "\n"


def _comparisons(records: list[dict[str, Any]]) -> list[str]:
    out = []
    for exp, table in (("nsl-kdd", "Table 1"), ("kdd99", "Table 2")):
        rs = [r for r in records if r["experiment"] == exp and r["method"] == "anoean"]
        ref = paper_value(exp, "anoean", "aucpr")
        if rs and ref is not None:
            mean, std = _ms([r["metrics"]["aucpr"] for r in rs])
            verdict = "meets" if mean >= ref else "falls short of"
            out.append(
                f"- {exp} ({table}): AnoEAN mean AUC-PR {_pm(mean, std)} over {len(rs)} "
                f"seed(s) {verdict} the paper's {ref:.1f}."
            )
    cases, methods, mean, std = _case_matrix(records, "mnist-nvm", _num)
    nvm = [r for r in records if r["experiment"] == "mnist-nvm"]
    if cases and "anoean" in methods:
        j = methods.index("anoean")
        wins = [_num(c) for i, c in enumerate(cases) if mean[i, j] == np.nanmax(mean[i])]
        losses = [_num(c) for c in cases if _num(c) not in wins]
        # the paper's methods not run (AnoEANPlus is beyond the paper, and tables only)
        missing = [DISPLAY[m] for m in PAPER_METHODS if m not in methods]
        out.append(
            f"- MNIST n-vs-m (Figure 3), claim: {FIG3_CLAIM}. Ours: AnoEAN is best at n = "
            f"{wins or 'none'}"
            + (f" and not at n = {losses}." if losses else ".")
            + f" Compared: {', '.join(_labels_with_seeds(nvm, methods))}"
            + (f"; not run: {', '.join(missing)}." if missing else ".")
        )
        if any(_reduced(nvm, m) for m in methods):
            out.append(f"  - {BUDGET_NOTE}")
        others = [k for k in range(len(methods)) if k != j]
        for i, c in enumerate(cases):
            if not others or np.isnan(mean[i, j]):
                continue
            k = max(others, key=lambda k: -np.inf if np.isnan(mean[i, k]) else mean[i, k])
            out.append(
                f"  - n = {_num(c)}: AnoEAN {_pm(mean[i, j], std[i, j])}, best other "
                f"{_label(nvm, methods[k])} {_pm(mean[i, k], std[i, k])} "
                f"(difference {mean[i, j] - mean[i, k]:+.1f})"
            )
    return out


#: the number of seeds of the paper's protocol, for the projected time
PROJECTED_SEEDS = 5


def time_breakdown(records: list[dict[str, Any]]) -> list[str]:
    """Markdown: run time per method and experiment (sum of the runs' wall times, i.e. the
    compute a single process would need), and the elapsed time of the runs on record."""
    exps = [
        e
        for e in ("nsl-kdd", "kdd99", "mnist-1vall", "mnist-nvm")
        if any(r["experiment"] == e for r in records)
    ]
    exps += sorted({r["experiment"] for r in records} - set(exps))
    per: dict[tuple[str, str], float] = defaultdict(float)
    runs: dict[str, int] = defaultdict(int)
    reduced = set()
    for r in records:
        per[(r["method"], r["experiment"])] += float(r["wall_s"])
        runs[r["method"]] += 1
        if (r.get("config") or {}).get("budget") == "reduced":
            reduced.add((r["method"], r["experiment"]))
    head = "| method | runs | " + " | ".join(f"{e} (min)" for e in exps)
    lines = [head + " | total (min) | mean s/run |", "|---" * (len(exps) + 4) + "|"]
    for m in _methods_in(records):
        cells = [
            f"{per[(m, e)] / 60:.1f}" + (REDUCED_MARK if (m, e) in reduced else "")
            if (m, e) in per
            else "–"
            for e in exps
        ]
        total = sum(per[(m, e)] for e in exps)
        lines.append(
            f"| {DISPLAY[m]} | {runs[m]} | {' | '.join(cells)} | {total / 60:.1f} | "
            f"{total / runs[m]:.1f} |"
        )
    total = sum(per.values())
    if reduced:
        lines += ["", f"{REDUCED_MARK} runs under the reduced budget (see the MNIST tables)."]
    lines.append("")
    lines.append(
        f"Sum of run times: {total / 3600:.2f} h (the wall time of one process running "
        "everything; `--jobs N` divides it by up to N when N cores are free)."
    )
    seeds = defaultdict(set)
    for r in records:
        seeds[(r["method"], r["experiment"])].add(r["seed"])
    per_seed = sum(t / max(1, len(seeds[k])) for k, t in per.items())
    lines.append(
        f"Run time per seed (each method and experiment's time divided by its number of seeds): "
        f"{per_seed / 3600:.2f} h; {PROJECTED_SEEDS} seeds of everything on record would take "
        f"{PROJECTED_SEEDS * per_seed / 3600:.2f} h of run time, at best "
        f"{PROJECTED_SEEDS * per_seed / 3600 / 2:.2f} h elapsed on 2 cores."
    )
    stamps = []
    for r in records:
        try:
            end = datetime.strptime(r["finished_at"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            stamps.append((end - float(r["wall_s"]), end))
        except (KeyError, ValueError):
            continue
    if stamps:
        start, end = min(a for a, _ in stamps), max(b for _, b in stamps)
        lines.append(
            f"Elapsed from the first run's start to the last run's end: {(end - start) / 3600:.2f} "
            "h (includes any pause between invocations)."
        )
    return lines


def write_report(out: str | os.PathLike[str]) -> list[Path]:
    """Write tables.md, the two figures and report.md into ``out``; return the paths."""
    out = Path(out)
    records = read_runs(out / RUNS_FILE)
    written: list[Path] = []
    tables = [
        "# Tables\n",
        "Mean ± standard deviation over seeds, in percent. AUC-PR is average precision; F1 is "
        "the best F1 over thresholds; FA (false-alarm rate, 1 - precision) and R (recall) are "
        "taken at that threshold. 'paper' is the published value where we have it.\n",
        "## Table 1: NSL-KDD\n",
        kdd_table(records, "nsl-kdd"),
        "## Table 2: KDD Cup 99\n",
        kdd_table(records, "kdd99"),
        "## MNIST one-vs-all (Figure 2), AUC-PR\n",
        _case_table(records, "mnist-1vall", "normal digit"),
        "## MNIST n-vs-m (Figure 3), AUC-PR\n",
        _case_table(records, "mnist-nvm", "n normal digits"),
    ]
    for exp, title in (
        ("nsl-kdd-official", "NSL-KDD, test set from KDDTest+ (beyond the paper)"),
        ("kdd99-official", "KDD Cup 99, test set from corrected (beyond the paper)"),
    ):
        if any(r["experiment"] == exp for r in records):
            tables += [f"## {title}\n", kdd_table(records, exp)]
    tables += [
        "## Seen and unseen anomalies\n",
        "Metrics on the test normals plus only the anomaly classes allowed in training "
        "('seen') or only those kept out of it ('unseen'). AUROC does not depend on how many "
        "anomalies a group has; AUC-PR does (its chance level is the group's anomaly share).\n",
        group_table(records),
    ]
    p = out / "tables.md"
    p.write_text("\n".join(tables))
    written.append(p)
    for exp, name in (("mnist-1vall", "fig2_mnist_1vall.png"), ("mnist-nvm", "fig3_mnist_nvm.png")):
        f = figure(records, exp, out / name)
        if f is not None:
            written.append(f)
    commits = sorted({str(r.get("versions", {}).get("git_commit")) for r in records})
    quick_modes: set[Any] = {r.get("quick") for r in records}  # JSON values: bools
    report = [
        "# Reproduction report\n",
        f"{len(records)} runs from `{RUNS_FILE}`; git commit(s): {', '.join(commits) or 'n/a'}; "
        f"quick mode: {sorted(quick_modes)}.\n",
        "## Against the paper\n",
        *(_comparisons(records) or ["- No run of a compared experiment yet."]),
        "",
        "## Time per method (run wall time, including hyperparameter selection)\n",
        *time_breakdown(records),
        "",
        "See `tables.md` for every number and the figures for MNIST.",
    ]
    p = out / "report.md"
    p.write_text("\n".join(report) + "\n")
    written.append(p)
    return written
