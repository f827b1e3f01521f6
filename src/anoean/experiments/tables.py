"""Tables 1 and 2, Figures 2 and 3, and a report against the paper, from ``runs.jsonl``.

Tables 1 and 2 put ours (mean ± std over seeds) beside every published cell
(:mod:`anoean.experiments.reference`) with the difference; the report's verdicts are
generated from the same numbers (:func:`paper_comparison`), and :func:`update_doc` copies
both into the generated blocks of a page such as docs/results.md.

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
from anoean.experiments.reference import (
    FIG3_CLAIM,
    HIGHER_IS_BETTER,
    PAPER,
    TABLES,
    paper_value,
)
from anoean.experiments.store import RUNS_FILE, read_runs

logger = logging.getLogger("anoean")

METRICS = ("aucpr", "best_f1", "false_alarm", "recall")
HEAD = {"aucpr": "AUC-PR", "best_f1": "F1", "false_alarm": "FA", "recall": "R"}


def _signed(d: float) -> str:
    """A difference in points, signed, to one decimal ("+0.0" rather than "-0.0")."""
    return f"{0.0 if round(d, 1) == 0 else d:+.1f}"


def _diff(mean: float, ref: float | None) -> str:
    """Ours minus the paper, in points, signed ('n/a' where the paper has no value)."""
    return "n/a" if ref is None else _signed(mean - ref)


def kdd_table(records: list[dict[str, Any]], experiment: str) -> str:
    """Markdown table: per method, mean ± std over seeds of each metric; for an experiment of
    the paper's Tables 1-2, beside each the paper's value and the difference (ours - paper, in
    points)."""
    recs = [r for r in records if r["experiment"] == experiment]
    if not recs:
        return f"_No runs for {experiment}._\n"
    groups = _group(recs)
    with_paper = experiment in PAPER
    heads = [
        f"{HEAD[m]} (ours)" + (f" | {HEAD[m]} (paper) | {HEAD[m]} (diff)" if with_paper else "")
        for m in METRICS
    ]
    per_metric = 3 if with_paper else 1
    lines = [
        f"| method | seeds | {' | '.join(heads)} | fit s |",
        "|---" * (3 + per_metric * len(METRICS)) + "|",
    ]
    for m in _methods_in(recs):
        rs = groups[(experiment, "all", m)]
        cells = []
        for k in METRICS:
            mean, std = _ms([r["metrics"][k] for r in rs])
            cell = _pm(mean, std)
            if with_paper:
                ref = paper_value(experiment, m, k)
                cell += f" | {'n/a' if ref is None else f'{ref:.1f}'} | {_diff(mean, ref)}"
            cells.append(cell)
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


#: the rule behind "within the seed spread", as the report states it
SPREAD_RULE = (
    "In brackets: AnoEAN's mean minus the other method's, in points (for FA, lower is "
    "better). 'Within the seed spread': the difference of two means is at most the larger of "
    "their standard deviations over seeds; against the paper (which gives no spread), at most "
    "ours"
)


def _better(metric: str, a: float, b: float) -> bool:
    return a > b if HIGHER_IS_BETTER[metric] else a < b


def _within(diff: float, *stds: float) -> bool:
    """Whether ``diff`` is within the seed spread (False when no spread is known)."""
    spread = [s for s in stds if not np.isnan(s)]
    return bool(spread) and abs(diff) <= max(spread)


def _standing(
    metric: str,
    ours: tuple[float, float],
    others: dict[str, tuple[float, float]],
    labels: dict[str, str],
    *,
    margins: bool,
) -> str:
    """'ahead of A (+d), B; behind C (-d, within the seed spread); level with D': AnoEAN's
    value ``ours`` (mean, std) against each other method's, in the metric's direction."""
    ahead, behind, level = [], [], []
    for m, (mean, std) in others.items():
        d = ours[0] - mean
        note = ""
        if margins:
            note = f" ({_signed(d)}" + (
                ", within the seed spread" if _within(d, ours[1], std) else ""
            )
            note += ")"
        if round(d, 1) == 0.0:
            level.append(labels[m] + note)
        elif _better(metric, ours[0], mean):
            ahead.append(labels[m] + note)
        else:
            behind.append(labels[m] + note)
    parts = []
    if ahead:
        every = not behind and not level and len(ahead) > 1
        parts.append("ahead of " + ("every other method: " if every else "") + ", ".join(ahead))
    if behind:
        parts.append("behind " + ", ".join(behind))
    if level:
        parts.append("level with " + ", ".join(level))
    return "; ".join(parts)


def _ordering(metric: str, values: dict[str, float], labels: dict[str, str]) -> str:
    """The methods from best to worst in ``metric``, with their values."""
    order = sorted(values, key=lambda m: -values[m] if HIGHER_IS_BETTER[metric] else values[m])
    return ", ".join(f"{labels[m]} {values[m]:.1f}" for m in order)


def paper_comparison(records: list[dict[str, Any]], experiment: str) -> list[str]:
    """Report lines comparing our runs of ``experiment`` (one of the paper's Tables 1-2) with
    the published table, generated from the numbers: AnoEAN's AUC-PR against the paper's;
    per metric, where the paper and where our runs place AnoEAN among the methods; how many
    of the published cells ours is better or worse than, or within the seed spread of.

    Parameters
    ----------
    records : list of dict
        Run records (``runs.jsonl``); only those of ``experiment`` are used.
    experiment : str
        "nsl-kdd" or "kdd99" (see :data:`anoean.experiments.reference.TABLES`).

    Returns
    -------
    list of str
        Markdown list lines; empty when there is no run of AnoEAN for ``experiment``.
    """
    table = TABLES[experiment]
    recs = [r for r in records if r["experiment"] == experiment]
    groups = _group(recs)
    methods = _methods_in(recs)
    if "anoean" not in methods:
        return []
    stats = {
        m: {k: _ms([r["metrics"][k] for r in groups[(experiment, "all", m)]]) for k in METRICS}
        for m in methods
    }
    labels = {m: DISPLAY.get(m, m) for m in {*methods, *PAPER[experiment]}}
    n_seeds = len(groups[(experiment, "all", "anoean")])
    out = []
    mean, std = stats["anoean"]["aucpr"]
    ref = paper_value(experiment, "anoean", "aucpr")
    if ref is not None:
        d = mean - ref
        if np.isnan(std):
            spread = "one seed: no spread"
        else:
            spread = ("within" if _within(d, std) else "outside") + " one standard deviation"
        verdict = "meets" if mean >= ref else "falls short of"
        out.append(
            f"- {experiment} ({table}): AnoEAN mean AUC-PR {_pm(mean, std)} over {n_seeds} "
            f"seed(s) {verdict} the paper's {ref:.1f} (difference {_signed(d)}, {spread})."
        )
    paper_rows = PAPER[experiment]
    for k in METRICS:
        theirs = {m: v[k] for m, v in paper_rows.items() if k in v}
        line = f"  - {HEAD[k]}: "
        if "anoean" in theirs:
            others = {m: (v, float("nan")) for m, v in theirs.items() if m != "anoean"}
            line += (
                f"the paper has AnoEAN ({theirs['anoean']:.1f}) "
                f"{_standing(k, (theirs['anoean'], float('nan')), others, labels, margins=False)}"
                ". "
            )
        others = {m: stats[m][k] for m in methods if m != "anoean"}
        line += f"Ours: AnoEAN ({_pm(*stats['anoean'][k])}) "
        line += _standing(k, stats["anoean"][k], others, labels, margins=True) or "alone"
        missing = [labels[m] for m in paper_rows if m not in methods]
        line += f"; not run: {', '.join(missing)}." if missing else "."
        out.append(line)
    theirs_auc = {m: v["aucpr"] for m, v in paper_rows.items() if "aucpr" in v}
    ours_auc = {m: stats[m]["aucpr"][0] for m in methods}
    out.append(
        f"  - AUC-PR from best to worst, paper: {_ordering('aucpr', theirs_auc, labels)}; "
        f"ours: {_ordering('aucpr', ours_auc, labels)}."
    )
    cells = [
        (m, k, stats[m][k][0] - v, stats[m][k][1])
        for m in methods
        for k in METRICS
        if (v := paper_value(experiment, m, k)) is not None
    ]
    if cells:
        within = [c for c in cells if _within(c[2], c[3])]
        rest = [c for c in cells if c not in within]
        better = [c for c in rest if _better(c[1], c[2], 0.0)]
        largest = sorted(cells, key=lambda c: -abs(c[2]))[:3]
        out.append(
            f"  - Of the {len(cells)} published cells we ran, ours is within one seed standard "
            f"deviation of the paper's in {len(within)}, better in {len(better)} and worse in "
            f"{len(rest) - len(better)} (better: higher AUC-PR, F1 and R, lower FA); largest "
            "differences (ours - paper): "
            + ", ".join(f"{labels[m]} {HEAD[k]} {_signed(d)}" for m, k, d, _ in largest)
            + "."
        )
    return out


def _comparisons(records: list[dict[str, Any]]) -> list[str]:
    out = []
    for exp in TABLES:
        out += paper_comparison(records, exp)
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


#: the heading of report.md's comparison with the paper
AGAINST_HEAD = "## Against the paper\n"
#: the markers of a block of a Markdown document that :func:`update_doc` regenerates
DOC_BEGIN = "<!-- generated by anoean.experiments.tables: {name} (do not edit by hand) -->"
DOC_END = "<!-- end of generated block: {name} -->"


def update_doc(path: str | os.PathLike[str], blocks: dict[str, str]) -> Path:
    """Replace, in the Markdown document ``path``, the text between each block's markers
    (:data:`DOC_BEGIN` and :data:`DOC_END` with the block's name) by ``blocks[name]``.

    Parameters
    ----------
    path : path-like
        The document; it must hold both markers of every block, once each.
    blocks : dict of str to str
        Block name -> its new text.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        A block's markers are missing, repeated or out of order.
    """
    path = Path(path)
    text = path.read_text()
    for name, body in blocks.items():
        begin, end = DOC_BEGIN.format(name=name), DOC_END.format(name=name)
        if text.count(begin) != 1 or text.count(end) != 1:
            raise ValueError(f"{path} must hold the markers of block {name!r} once each")
        a, b = text.index(begin) + len(begin), text.index(end)
        if b < a:
            raise ValueError(f"{path}: the end marker of block {name!r} is before its start")
        text = text[:a] + "\n" + body.strip("\n") + "\n" + text[b:]
    path.write_text(text)
    return path


def doc_blocks(tables_md: str, report_md: str) -> dict[str, str]:
    """The generated blocks of docs/results.md from the texts of tables.md and report.md:
    ``"tables"``, every table with headings one level down (tables.md without its title),
    and ``"verdicts"``, the lines of report.md's "Against the paper" section."""
    body = tables_md.split("\n", 1)[1] if tables_md.startswith("# ") else tables_md
    tables = "\n".join("#" + ln if ln.startswith("## ") else ln for ln in body.splitlines())
    section = report_md.split(AGAINST_HEAD, 1)[1].split("\n## ", 1)[0]
    return {"tables": tables, "verdicts": section}


def write_report(
    out: str | os.PathLike[str],
    *,
    runs: str | os.PathLike[str] | None = None,
    doc: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write tables.md, the two figures and report.md into ``out``; return the paths.

    Parameters
    ----------
    out : path-like
        Output folder.
    runs : path-like, optional
        The run records to report; by default ``out/runs.jsonl``. Nothing is run: the
        report is regenerated from the records alone.
    doc : path-like, optional
        A Markdown document whose generated blocks (:func:`update_doc`; ``tables`` and
        ``verdicts``, see :func:`doc_blocks`) are refreshed from the same texts, such as
        docs/results.md. It is returned last.
    """
    out = Path(out)
    runs_path = Path(runs) if runs is not None else out / RUNS_FILE
    records = read_runs(runs_path)
    written: list[Path] = []
    tables = [
        "# Tables\n",
        "Mean ± standard deviation over seeds, in percent. AUC-PR is average precision; F1 is "
        "the best F1 over thresholds; FA (false-alarm rate, 1 - precision) and R (recall) are "
        "taken at that threshold. 'paper' is the published value (the paper's Tables 1-2: its "
        "'AUC' is the area under the precision-recall curve, its FA 1 - precision); 'diff' is "
        "ours minus the paper's, in points.\n",
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
        f"{len(records)} runs from `{runs_path.name}`; "
        f"git commit(s): {', '.join(commits) or 'n/a'}; "
        f"quick mode: {sorted(quick_modes)}.\n",
        AGAINST_HEAD,
        *(_comparisons(records) or ["- No run of a compared experiment yet."]),
        "",
        f"{SPREAD_RULE}.",
        "",
        "## Time per method (run wall time, including hyperparameter selection)\n",
        *time_breakdown(records),
        "",
        "See `tables.md` for every number and the figures for MNIST.",
    ]
    p = out / "report.md"
    p.write_text("\n".join(report) + "\n")
    written.append(p)
    if doc is not None:
        written.append(update_doc(doc, doc_blocks("\n".join(tables), p.read_text())))
    return written
