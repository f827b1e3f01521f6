"""The paper's Tables 1-2 in ``anoean.experiments.reference`` (checked cell by cell against
the paper's files where they are present), and the tables, verdicts and docs/results.md
blocks that compare our runs with them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from anoean.experiments import tables
from anoean.experiments.methods import DISPLAY, METHODS
from anoean.experiments.reference import PAPER, TABLES, paper_value
from anoean.experiments.runner import RUNS_FILE
from anoean.experiments.tables import (
    DOC_BEGIN,
    DOC_END,
    doc_blocks,
    kdd_table,
    paper_comparison,
    update_doc,
    write_report,
)

REPO = Path(__file__).resolve().parents[2]
PAPER_DIR = REPO.parent / "shared" / "paper"
KEYS = ("aucpr", "best_f1", "false_alarm", "recall")
BY_DISPLAY = {v: k for k, v in DISPLAY.items()}


def _paper_file(name: str) -> Path:
    path = PAPER_DIR / name
    if not path.exists():
        pytest.skip(f"{path} is not here (the paper's files live beside the repository)")
    return path


def _check_cells(cells: dict[tuple[str, str], list[float]]) -> None:
    """Every (table, method) of ``cells`` and of PAPER agrees, value by value."""
    ours = {(t, m): [v[k] for k in KEYS] for t, rows in PAPER.items() for m, v in rows.items()}
    assert set(cells) == set(ours)
    for key, values in cells.items():
        assert ours[key] == values, key


def test_every_published_cell_matches_the_papers_readme():
    text = _paper_file("README.md").read_text()
    head = re.search(r"^\| table \| method \| (.+) \|$", text, re.M)
    assert head is not None and head.group(1) == "AUC | F1 | FA | recall"
    tables_ = {"1 NSL-KDD": "nsl-kdd", "2 KDD99": "kdd99"}
    cells = {}
    for row in re.finditer(
        r"^\| (\d [\w-]+) \| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| "
        r"([\d.]+) \|$",
        text,
        re.M,
    ):
        table, method, *values = row.groups()
        cells[(tables_[table], BY_DISPLAY[method])] = [float(v) for v in values]
    assert len(cells) == 12
    _check_cells(cells)


def test_every_published_cell_matches_the_papers_text():
    """The tables as printed in the paper's text: tab-separated rows ``AUC F1 FA Rappel
    Modèle`` above each caption ``TABLE n``."""
    lines = _paper_file("anoean-paper.txt").read_text().splitlines()
    cells, rows = {}, []
    for line in lines:
        if line.split("\t") == ["AUC", "F1", "FA", "Rappel", "Modèle"]:
            rows = []
        elif re.fullmatch(r"(?:[\d.]+\t){4}\w+", line):
            *values, method = line.split("\t")
            rows.append((BY_DISPLAY[method], [float(v) for v in values]))
        elif m := re.match(r"TABLE (\d) ", line):
            table = {"1": "nsl-kdd", "2": "kdd99"}[m.group(1)]
            cells.update({(table, method): values for method, values in rows})
            rows = []
    assert len(cells) == 12
    _check_cells(cells)


def test_no_published_cell_is_missing():
    assert set(PAPER) == set(TABLES) == {"nsl-kdd", "kdd99"}
    for table in TABLES:
        assert set(PAPER[table]) == set(METHODS)  # the paper's six methods
        for method in METHODS:
            for k in KEYS:
                v = paper_value(table, method, k)
                assert isinstance(v, float) and 0.0 <= v <= 100.0, (table, method, k)


def _rec(exp: str, method: str, seed: int, **metrics: float) -> dict:
    m = {"aucpr": 0.9, "best_f1": 0.9, "false_alarm": 0.05, "recall": 0.9, "auroc": 0.9}
    m.update(metrics)
    return {
        "run_id": f"{exp}/all/{method}/seed{seed}",
        "experiment": exp,
        "case": "all",
        "method": method,
        "seed": seed,
        "metrics": m,
        "fit_s": 1.0,
        "wall_s": 2.0,
        "quick": False,
        "versions": {"git_commit": "abc"},
    }


def test_the_table_shows_ours_the_papers_and_the_difference():
    recs = [_rec("nsl-kdd", "anoean", s, aucpr=0.97 + 0.01 * s) for s in range(3)]
    recs += [_rec("nsl-kdd", "ocsvm", s, false_alarm=0.2) for s in range(3)]
    recs += [_rec("nsl-kdd-official", "anoean", 0)]
    text = kdd_table(recs, "nsl-kdd")
    head = text.splitlines()[0]
    for h in ("AUC-PR", "F1", "FA", "R"):
        assert f"| {h} (ours) | {h} (paper) | {h} (diff) |" in head
    # mean 98.0 ± 1.0 against the paper's 97.5; F1 90.0 against 94.8; FA 5.0 against 5.0
    assert "| AnoEAN | 3 | 98.0 ± 1.0 | 97.5 | +0.5 | 90.0 ± 0.0 | 94.8 | -4.8 |" in text
    assert "| 5.0 ± 0.0 | 5.0 | +0.0 | 90.0 ± 0.0 | 94.6 | -4.6 |" in text
    assert "| OCSVM | 3 | 90.0 ± 0.0 | 94.1 | -4.1 | 90.0 ± 0.0 | 87.9 | +2.1 |" in text
    assert "| 20.0 ± 0.0 | 13.1 | +6.9 |" in text
    # no published table: no paper columns
    official = kdd_table(recs, "nsl-kdd-official")
    assert "(paper)" not in official and "| AnoEAN | 1 | 90.0 |" in official


def test_verdicts_say_what_was_measured():
    def runs(svm_aucpr: float) -> list[dict]:
        recs = []
        for s in range(3):
            recs.append(_rec("kdd99", "anoean", s, aucpr=0.98 + 0.01 * (s - 1)))
            recs.append(_rec("kdd99", "svm", s, aucpr=svm_aucpr, false_alarm=0.01))
            recs.append(_rec("kdd99", "ocsvm", s, aucpr=0.90 + 0.005 * (s - 1)))
        return recs

    lines = paper_comparison(runs(0.995), "kdd99")
    assert lines[0] == (
        "- kdd99 (Table 2): AnoEAN mean AUC-PR 98.0 ± 1.0 over 3 seed(s) falls short of the "
        "paper's 98.9 (difference -0.9, within one standard deviation)."
    )
    auc = next(ln for ln in lines if ln.startswith("  - AUC-PR: "))
    assert "the paper has AnoEAN (98.9) ahead of every other method: AnoGAN, EGBAD" in auc
    assert "Ours: AnoEAN (98.0 ± 1.0) ahead of OCSVM (+8.0); behind SVM (-1.5)" in auc
    assert auc.endswith("; not run: AnoGAN, EGBAD, ALAD.")
    fa = next(ln for ln in lines if ln.startswith("  - FA: "))
    # KDD99's published FA: SVM 0.6 and ALAD 3.6 are below AnoEAN's 3.9
    assert "the paper has AnoEAN (3.9) ahead of AnoGAN, EGBAD, OCSVM; behind ALAD, SVM." in fa
    assert "Ours: AnoEAN (5.0 ± 0.0) behind SVM (+4.0); level with OCSVM (+0.0, within" in fa
    assert any("ours: SVM 99.5, AnoEAN 98.0, OCSVM 90.0." in ln for ln in lines)
    assert any(ln.startswith("  - Of the 12 published cells we ran,") for ln in lines)
    # other numbers, other verdict: the SVM within AnoEAN's spread, then behind it
    auc = next(ln for ln in paper_comparison(runs(0.985), "kdd99") if "AUC-PR: " in ln)
    assert "behind SVM (-0.5, within the seed spread)" in auc
    auc = next(ln for ln in paper_comparison(runs(0.95), "kdd99") if "AUC-PR: " in ln)
    assert "Ours: AnoEAN (98.0 ± 1.0) ahead of every other method: OCSVM (+8.0), SVM (+3.0)" in auc
    assert paper_comparison([_rec("kdd99", "svm", 0)], "kdd99") == []


def test_update_doc_replaces_only_the_marked_blocks(tmp_path):
    doc = tmp_path / "doc.md"
    b, e = DOC_BEGIN.format(name="tables"), DOC_END.format(name="tables")
    doc.write_text(f"# Title\n\nkept\n{b}\nold\n{e}\n\nalso kept\n")
    update_doc(doc, {"tables": "new\nlines\n"})
    assert doc.read_text() == f"# Title\n\nkept\n{b}\nnew\nlines\n{e}\n\nalso kept\n"
    with pytest.raises(ValueError, match="'verdicts'"):
        update_doc(doc, {"verdicts": "x"})
    doc.write_text(f"{e}\n{b}\n")
    with pytest.raises(ValueError, match="before its start"):
        update_doc(doc, {"tables": "x"})


def test_docs_results_are_what_the_records_give(tmp_path):
    """docs/results/tables.md, report.md and the generated blocks of docs/results.md are
    regenerated from runs_full.jsonl (``anoean reproduce --report-only``): they must be what
    the records and the code give now, the paper's numbers included."""
    runs = REPO / "docs/results/runs_full.jsonl"
    doc = tmp_path / "results.md"
    shutil.copy(REPO / "docs/results.md", doc)
    write_report(tmp_path, runs=runs, doc=doc)
    for name in ("tables.md", "report.md"):
        assert (tmp_path / name).read_text() == (REPO / "docs/results" / name).read_text(), name
    assert doc.read_text() == (REPO / "docs/results.md").read_text()
    report = (tmp_path / "report.md").read_text()
    assert "540 runs from `runs_full.jsonl`" in report
    assert "the paper has AnoEAN (97.5) ahead of every other method" in report
    blocks = doc_blocks((tmp_path / "tables.md").read_text(), report)
    assert "| AnoEAN | 5 | 98.1 ± 0.4 | 97.5 | +0.6 |" in blocks["tables"]


def test_cli_report_only_runs_nothing(tmp_path, monkeypatch):
    from anoean import experiments
    from anoean.cli import main

    def no_run(**kwargs: object) -> None:
        raise AssertionError("--report-only must not run experiments")

    monkeypatch.setattr(experiments, "reproduce", no_run)
    runs = tmp_path / "records.jsonl"
    runs.write_text(json.dumps(_rec("nsl-kdd", "anoean", 0)) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["reproduce", "--report-only", "--runs", str(runs), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "| AnoEAN | 1 | 90.0 | 97.5 | -7.5 |" in (out / "tables.md").read_text()
    assert not (out / RUNS_FILE).exists()
    res = CliRunner().invoke(main, ["reproduce", "--runs", str(runs), "--out", str(out)])
    assert res.exit_code == 2 and "--report-only" in res.output
    assert tables.AGAINST_HEAD in (out / "report.md").read_text()
