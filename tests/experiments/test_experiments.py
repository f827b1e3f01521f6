"""The reproduction runner: planning, one real quick run, resume, report files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _data_helpers import MNIST_FILES, require_files

from anoean.experiments import plan_runs, reproduce
from anoean.experiments.methods import method_spec
from anoean.experiments.runner import RUNS_FILE, cases, nvm_normal_digits, read_runs
from anoean.experiments.tables import write_report


def test_plan_covers_every_triple_once():
    runs = plan_runs(
        ["nsl-kdd", "mnist-1vall", "mnist-nvm"], ["anoean", "ocsvm"], range(2), quick=True
    )
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids))
    # nsl-kdd: 1 case, 1vall quick: 2 digits, nvm quick: n in {1, 3}; x 2 methods x 2 seeds
    assert len(ids) == (1 + 2 + 2) * 2 * 2
    # seed-major: every run of seed 0 comes before any run of seed 1
    seeds = [r.seed for r in runs]
    assert seeds == sorted(seeds)
    with pytest.raises(ValueError, match="unknown method"):
        plan_runs(["nsl-kdd"], ["nope"], range(1), quick=True)
    with pytest.raises(ValueError, match="unknown experiment"):
        cases("cifar", 0, quick=True)


def test_full_plan_sizes_and_digit_choice():
    assert len(cases("mnist-1vall", 0, quick=False)) == 10
    nvm = cases("mnist-nvm", 3, quick=False)
    assert [len(o["normal"]) for _, _, o in nvm] == [1, 2, 3, 4, 5]
    assert nvm_normal_digits(3, 0) == nvm_normal_digits(3, 0)
    assert len({tuple(nvm_normal_digits(2, s)) for s in range(5)}) > 1  # seeds vary the digits
    digit5 = dict((c, o) for c, _, o in cases("mnist-1vall", 0, quick=False))["digit5"]
    assert digit5["n_train_normal"] == 4500


def test_method_specs():
    full = method_spec("anoean", images=False, quick=False)
    assert full.grid == {"latent_dim": [8, 16, 32]}
    assert len(list(full.configs())) == 3
    assert method_spec("alad", images=True, quick=True).fixed["max_epochs"] == 1
    assert method_spec("anogan", images=False, quick=True).fixed["n_search_iter"] == 10
    full_anogan = method_spec("anogan", images=False, quick=False).fixed
    assert (full_anogan["n_search_iter"], full_anogan["val_search_iter"]) == (500, 50)
    assert method_spec("ocsvm", images=False, quick=False).grid  # the baselines' own grid
    quick = method_spec("anoean", images=True, quick=True)
    assert list(quick.configs()) == [
        {"encoder": "conv", "device": "cpu", "max_epochs": 3, "patience": 10}
    ]


@pytest.mark.realdata
def test_quick_run_resume_and_report(tmp_path):
    data_home = require_files("nsl-kdd/KDDTrain+.txt.gz")
    out = tmp_path / "results"
    kw = dict(
        experiments=["nsl-kdd"],
        methods=["anoean"],
        seeds=1,
        out=out,
        quick=True,
        data_home=str(data_home),
        progress=False,
    )
    summary = reproduce(**kw)
    assert summary["ran"] == 1 and summary["failed"] == 0
    (rec,) = read_runs(out / RUNS_FILE)
    assert rec["run_id"] == "nsl-kdd/all/anoean/seed0"
    assert set(rec["metrics"]) == {"aucpr", "best_f1", "false_alarm", "recall", "auroc"}
    assert rec["metrics"]["aucpr"] > 0.8
    assert {"torch", "numpy", "anoean", "git_commit"} <= set(rec["versions"])
    assert rec["split"]["name"] == "nsl-kdd" and rec["fit_s"] > 0 and rec["score_s"] > 0
    assert "DoS" in rec["split_description"]
    # seen (DoS/Probe) anomalies get their own metrics; the groups partition the anomalies
    by_group = rec["metrics_by_group"]
    assert by_group["seen"]["auroc"] > 0.8
    n_groups = sum(g["n_anomalies"] for g in by_group.values())
    assert n_groups == rec["split"]["parts"]["test"]["n_anomalous"]
    # resume: nothing left to run, the file is unchanged
    before = (out / RUNS_FILE).read_text()
    assert reproduce(**kw)["ran"] == 0
    assert (out / RUNS_FILE).read_text() == before
    tables = (out / "tables.md").read_text()
    assert "Table 1: NSL-KDD" in tables and "| AnoEAN | 1 |" in tables and "97.5" in tables
    assert "AnoEAN mean AUC-PR" in (out / "report.md").read_text()


def _fake(exp, case, method, seed, aucpr):
    m = {"aucpr": aucpr, "best_f1": 0.5, "false_alarm": 0.1, "recall": 0.6, "auroc": 0.9}
    return {
        "run_id": f"{exp}/{case}/{method}/seed{seed}",
        "experiment": exp,
        "case": case,
        "method": method,
        "seed": seed,
        "metrics": m,
        "fit_s": 1.0,
        "wall_s": 2.0,
        "quick": True,
        "versions": {"git_commit": "abc"},
    }


def test_report_from_records(tmp_path):
    recs = [_fake("nsl-kdd", "all", "anoean", s, 0.96 + 0.01 * s) for s in range(3)]
    recs += [
        _fake("mnist-nvm", f"n{n}", m, 0, a)
        for n in (1, 3)
        for m, a in (("anoean", 0.9), ("ocsvm", 0.8 if n == 1 else 0.95))
    ]
    recs += [_fake("mnist-1vall", f"digit{d}", "anoean", 0, 0.9) for d in (0, 1)]
    path = tmp_path / RUNS_FILE
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n{truncated")
    written = {p.name for p in write_report(tmp_path)}
    assert written == {"tables.md", "report.md", "fig2_mnist_1vall.png", "fig3_mnist_nvm.png"}
    tables = (tmp_path / "tables.md").read_text()
    assert "97.0 ± 1.0" in tables  # mean ± std of 96, 97, 98
    report = (tmp_path / "report.md").read_text()
    assert "falls short of the paper's 97.5" in report
    assert "best at n = [1] and not at n = [3]" in report
    # the verdict names what was compared, and the margin per n
    assert "Compared: OCSVM, AnoEAN; not run: SVM, AnoGAN, EGBAD, ALAD." in report
    # one seed each: no spread to show
    assert "n = 3: AnoEAN 90.0, best other OCSVM 95.0 (difference -5.0)" in report
    # time per method and experiment: 3 nsl-kdd runs of 2 s, 2 + 2 MNIST runs of 2 s
    assert "| AnoEAN | 7 | 0.1 | 0.1 | 0.1 | 0.2 | 2.0 |" in report
    assert "Sum of run times: 0.01 h" in report
    assert (tmp_path / "fig3_mnist_nvm.png").read_bytes()[:4] == b"\x89PNG"


def test_report_marks_reduced_budget_and_unequal_seeds(tmp_path):
    from anoean.experiments.tables import BUDGET_NOTE

    recs = [_fake("mnist-nvm", f"n{n}", "anoean", s, 0.9) for n in (1, 2) for s in range(3)]
    for n in (1, 2):
        r = _fake("mnist-nvm", f"n{n}", "egbad", 0, 0.95 if n == 1 else 0.5)
        r["config"] = {"budget": "reduced"}
        r["wall_s"] = 60.0
        recs.append(r)
    (tmp_path / RUNS_FILE).write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    write_report(tmp_path)
    tables = (tmp_path / "tables.md").read_text()
    assert "| n normal digits | EGBAD† (1 seed) | AnoEAN (3 seeds) |" in tables
    assert BUDGET_NOTE in tables
    report = (tmp_path / "report.md").read_text()
    assert "Compared: EGBAD† (1 seed), AnoEAN (3 seeds); not run: OCSVM," in report
    assert "n = 1: AnoEAN 90.0 ± 0.0, best other EGBAD† 95.0 (difference -5.0)" in report
    assert "| EGBAD | 2 | 2.0† | 2.0 | 60.0 |" in report  # the reduced runs' cell is marked
    # per seed: AnoEAN 6 runs x 2 s over 3 seeds = 4 s, EGBAD 2 x 60 s over 1 seed = 120 s
    assert "Run time per seed" in report and "0.03 h;" in report
    assert "5 seeds of everything on record would take 0.17 h of run time" in report
    # records without a budget (tables, AnoEAN) are not marked
    recs = [_fake("mnist-nvm", "n1", m, 0, 0.9) for m in ("egbad", "anoean")]
    (tmp_path / RUNS_FILE).write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    write_report(tmp_path)
    tables = (tmp_path / "tables.md").read_text()
    assert "| n normal digits | EGBAD | AnoEAN |" in tables and "†" not in tables


def test_official_test_file_experiments_and_seen_unseen_metrics():
    from types import SimpleNamespace

    from anoean.experiments.runner import metrics_by_group

    assert cases("nsl-kdd-official", 0, quick=False) == [
        ("all", "nsl-kdd", {"test_file": "official"})
    ]
    assert cases("kdd99-official", 2, quick=True)[0][1:] == ("kdd99", {"test_file": "official"})
    # KDD: anomalies are grouped by attack family (DoS/Probe seen, R2L unseen here)
    kdd = SimpleNamespace(
        name="nsl-kdd",
        seen=("DoS", "Probe"),
        y_test=np.array([0, 0, 0, 1, 1, 1]),
        c_test=np.array(["normal", "normal", "normal", "neptune", "satan", "guess_passwd"]),
    )
    scores = np.array([0.1, 0.2, 0.9, 0.8, 0.95, 0.15])
    g = metrics_by_group(kdd, scores)
    assert g["seen"]["n_anomalies"] == 2 and g["unseen"]["n_anomalies"] == 1
    assert g["seen"]["auroc"] == pytest.approx(5 / 6)  # 0.8 and 0.95 vs 0.1, 0.2, 0.9
    assert g["unseen"]["auroc"] == pytest.approx(1 / 3)  # 0.15 beats only 0.1
    # MNIST: by digit; a group without test anomalies is left out
    mnist = SimpleNamespace(
        name="mnist-1vall",
        seen=(3, 5),
        y_test=np.array([0, 0, 1, 1]),
        c_test=np.array([1, 1, 3, 5]),
    )
    g = metrics_by_group(mnist, np.array([0.0, 0.1, 0.5, 0.6]))
    assert set(g) == {"seen"} and g["seen"]["aucpr"] == pytest.approx(1.0)


def test_report_tables_seen_unseen_and_official(tmp_path):
    recs = []
    for s in range(2):
        for exp in ("nsl-kdd", "nsl-kdd-official"):
            r = _fake(exp, "all", "anoean", s, 0.9)
            r["metrics_by_group"] = {
                "seen": {"auroc": 0.99, "aucpr": 0.98, "n_anomalies": 300},
                "unseen": {"auroc": 0.7 + 0.1 * s, "aucpr": 0.3, "n_anomalies": 40},
            }
            recs.append(r)
    r = _fake("kdd99", "all", "anoean", 0, 0.9)
    r["metrics_by_group"] = {"seen": {"auroc": 0.9, "aucpr": 0.9, "n_anomalies": 340}}
    r2 = _fake("kdd99", "all", "anoean", 1, 0.9)
    r2["metrics_by_group"] = {
        "seen": {"auroc": 0.9, "aucpr": 0.9, "n_anomalies": 339},
        "unseen": {"auroc": 0.5, "aucpr": 0.01, "n_anomalies": 1},
    }
    recs += [r, r2]
    (tmp_path / RUNS_FILE).write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    write_report(tmp_path)
    tables = (tmp_path / "tables.md").read_text()
    assert "## NSL-KDD, test set from KDDTest+ (beyond the paper)" in tables
    assert (
        "| nsl-kdd | AnoEAN | 2 | 40.0 | 99.0 ± 0.0 | 75.0 ± 7.1 | 98.0 ± 0.0 | 30.0 ± 0.0 |"
        in (tables)
    )
    assert "| nsl-kdd-official | AnoEAN | 2 |" in tables
    # a group present in only some runs says so
    assert "| kdd99 | AnoEAN | 2 | 0.5 | 90.0 ± 0.0 | 50.0 (1 of 2 runs) |" in tables


def test_full_mode_warns_before_hours_long_gan_runs_on_mnist(tmp_path, caplog, monkeypatch):
    import anoean.experiments.runner as runner

    monkeypatch.setattr(runner, "run_one", lambda run, **kw: (_ for _ in ()).throw(OSError("x")))
    kw = dict(experiments=["mnist-nvm"], seeds=1, progress=False, write_report=False)
    with caplog.at_level("WARNING", logger="anoean"):
        reproduce(methods=["egbad", "anoean"], out=tmp_path, image_gan_budget="original", **kw)
    assert any("egbad on MNIST under the original budget" in r.getMessage() for r in caplog.records)
    for methods, budget in ((["anoean"], "original"), (["egbad", "anoean"], "reduced")):
        caplog.clear()
        with caplog.at_level("WARNING", logger="anoean"):
            reproduce(methods=methods, out=tmp_path / budget, image_gan_budget=budget, **kw)
        assert not any("on MNIST under" in r.getMessage() for r in caplog.records)


def test_image_gan_budget_specs_and_resume(tmp_path, monkeypatch):
    """The reduced budget is one learning rate for 4 epochs (AnoGAN: a 20-step search) on
    images in full mode only; runs done under one budget are not taken for the other's."""
    import anoean.experiments.runner as runner
    from anoean.experiments.methods import REDUCED_IMAGE_GAN, method_spec

    red = method_spec("anogan", images=True, quick=False)
    assert red.budget == "reduced" and red.grid == {}
    assert red.fixed["max_epochs"] == REDUCED_IMAGE_GAN["max_epochs"] == 4
    assert red.fixed["lr"] == 2e-4 and red.fixed["n_search_iter"] == 20
    orig = method_spec("anogan", images=True, quick=False, image_gan_budget="original")
    assert orig.budget == "original" and orig.grid["lr"] == [1e-5, 1e-4, 1e-3]
    assert orig.fixed["max_epochs"] == 30 and orig.fixed["n_search_iter"] == 100
    # tables, quick runs and AnoEAN are untouched by the budget
    assert method_spec("alad", images=False, quick=False).budget is None
    assert method_spec("alad", images=True, quick=True).budget is None
    assert method_spec("anoean", images=True, quick=False).budget is None
    with pytest.raises(ValueError, match="image_gan_budget 'big'"):
        method_spec("alad", images=True, quick=False, image_gan_budget="big")

    seen: list[tuple[str, str]] = []

    def fake_run_one(run, *, quick, data_home=None, image_gan_budget="reduced", device="cpu"):
        seen.append((run.run_id, image_gan_budget))
        budget = runner.run_budget(run, quick=quick, image_gan_budget=image_gan_budget)
        return {"run_id": run.run_id, "quick": quick, "config": {"budget": budget}}

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    kw = dict(
        experiments=["mnist-nvm"],
        methods=["egbad", "anoean"],
        seeds=1,
        out=tmp_path,
        progress=False,
        write_report=False,
    )
    assert reproduce(**kw)["ran"] == 10  # n = 1..5, two methods
    assert reproduce(**kw)["ran"] == 0
    # the original budget redoes the GAN runs only; AnoEAN's records serve both
    seen.clear()
    assert reproduce(image_gan_budget="original", **kw)["ran"] == 5
    assert {rid.split("/")[2] for rid, _ in seen} == {"egbad"}
    assert {b for _, b in seen} == {"original"}
    with pytest.raises(ValueError, match="image_gan_budget"):
        reproduce(image_gan_budget="none", **kw)


def test_cli_reproduce_passes_options_through(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import anoean.experiments
    from anoean.cli import main

    calls: list[dict] = []

    def fake(**kw):
        calls.append(kw)
        return {
            "ran": 2,
            "failed": 1 if kw["image_gan_budget"] == "original" else 0,
            "planned": 2,
            "wall_s": 0.0,
            "written": [],
        }

    monkeypatch.setattr(anoean.experiments, "reproduce", fake)
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "reproduce",
            "--experiments",
            "mnist-nvm",
            "--methods",
            "egbad,anoean",
            "--seeds",
            "3",
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    kw = calls[-1]
    assert kw["experiments"] == ["mnist-nvm"] and kw["methods"] == ["egbad", "anoean"]
    assert kw["seeds"] == 3 and kw["jobs"] == 2 and kw["image_gan_budget"] == "reduced"
    assert kw["progress"] is False and not kw["quick"]
    # --quick forces one seed; a failed run makes the exit status non-zero
    res = runner.invoke(
        main,
        [
            "reproduce",
            "--quick",
            "--seeds",
            "4",
            "--image-gan-budget",
            "original",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert res.exit_code == 1 and "1 run(s) failed" in res.output
    assert calls[-1]["seeds"] == 1 and calls[-1]["image_gan_budget"] == "original"
    res = runner.invoke(main, ["reproduce", "--image-gan-budget", "huge", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "huge" in res.output


@pytest.mark.slow
@pytest.mark.realdata
def test_cli_quick_reproduction_end_to_end(tmp_path):
    """The `--quick` smoke test: the real CLI, in a subprocess, with 2 worker processes, on
    the four paper experiments. Every method runs on the tables; on MNIST the three cheap
    methods (AnoEAN's convolutional encoder among them), plus one convolutional GAN (EGBAD)
    on one-vs-all only (one epoch of it takes 25 s in one thread), keep it to about a
    minute and a half."""
    import subprocess
    import sys

    root = require_files(
        "nsl-kdd/KDDTrain+.txt.gz", "kddcup99/kddcup.data_10_percent.gz", *MNIST_FILES
    ).resolve()
    out = tmp_path / "results"

    def cli(*args: str) -> str:
        cmd = [sys.executable, "-m", "anoean", "reproduce", "--quick", "--jobs", "2"]
        cmd += ["--quiet", "--data-home", str(root), "--out", str(out), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    tab = ("--experiments", "nsl-kdd,kdd99")
    assert "12 run(s) done (0 failed) of 12 planned" in cli(*tab)
    img_methods = ["ocsvm", "svm", "anoean"]
    # quick mode: 2 digits one-vs-all and n in {1, 3}, so 2 cases per method and experiment
    one = ("--experiments", "mnist-1vall", "--methods", ",".join([*img_methods, "egbad"]))
    assert "8 run(s) done (0 failed) of 8 planned" in cli(*one)
    nvm = ("--experiments", "mnist-nvm", "--methods", ",".join(img_methods))
    assert "6 run(s) done (0 failed) of 6 planned" in cli(*nvm)

    recs = read_runs(out / RUNS_FILE)
    assert len(recs) == len({r["run_id"] for r in recs}) == 26
    by_exp: dict[str, set] = {}
    for r in recs:
        by_exp.setdefault(r["experiment"], set()).add(r["method"])
        assert r["quick"] and r["seed"] == 0
        assert all(0.0 <= r["metrics"][k] <= 1.0 for k in ("aucpr", "best_f1", "auroc"))
        assert r["fit_s"] > 0 and r["versions"]["git_commit"]
    six = {"ocsvm", "svm", "anogan", "egbad", "alad", "anoean"}
    assert by_exp == {
        "nsl-kdd": six,
        "kdd99": six,
        "mnist-1vall": {*img_methods, "egbad"},
        "mnist-nvm": set(img_methods),
    }
    nvm_cases = [r["case"] for r in recs if r["method"] == "anoean" and "nvm" in r["experiment"]]
    assert sorted(nvm_cases) == ["n1", "n3"]
    nsl = {r["method"]: r["metrics"]["aucpr"] for r in recs if r["experiment"] == "nsl-kdd"}
    assert nsl["anoean"] > 0.8 and nsl["svm"] > 0.8

    # the outputs the issue lists, written from the records
    tables = (out / "tables.md").read_text()
    for title in ("Table 1: NSL-KDD", "Table 2: KDD Cup 99", "MNIST one-vs-all", "MNIST n-vs-m"):
        assert title in tables
    for label in ("OCSVM", "SVM", "AnoGAN", "EGBAD", "ALAD", "AnoEAN"):
        assert f"| {label} | 1 |" in tables
    for fig in ("fig2_mnist_1vall.png", "fig3_mnist_nvm.png"):
        data = (out / fig).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    report = (out / "report.md").read_text()
    assert "AnoEAN mean AUC-PR" in report and "MNIST n-vs-m" in report

    # resuming runs nothing and leaves the records as they were
    before = (out / RUNS_FILE).read_text()
    assert "0 run(s) done (0 failed) of 12 planned" in cli(*tab)
    assert (out / RUNS_FILE).read_text() == before


def test_anoeanplus_is_beyond_the_paper_and_tables_only():
    from anoean.experiments.methods import ALL_METHODS, METHODS, method_spec
    from anoean.experiments.runner import plan_runs

    assert "anoeanplus" in ALL_METHODS and "anoeanplus" not in METHODS  # not run by default
    spec = method_spec("anoeanplus", images=False, quick=False)
    # its own defaults: no epoch budget or early stopping imposed, no grid
    assert spec.fixed == {"encoder": "mlp", "device": "cpu"} and spec.grid == {}
    assert method_spec("anoeanplus", images=False, quick=True).fixed["max_epochs"] == 10
    with pytest.raises(ValueError, match="tables only"):
        method_spec("anoeanplus", images=True, quick=False)
    with pytest.raises(ValueError, match="tables only"):
        plan_runs(["nsl-kdd", "mnist-1vall"], ["anoean", "anoeanplus"], [0], quick=True)
    runs = plan_runs(["nsl-kdd"], ["anoeanplus"], [0], quick=True)
    assert [r.method for r in runs] == ["anoeanplus"]


def test_reproduction_device_reaches_the_neural_methods_only() -> None:
    from anoean.experiments.methods import method_spec

    for name in ("anoean", "anogan", "egbad", "alad"):
        for images in (False, True):
            spec = method_spec(name, images=images, quick=True, device="cuda:1")
            assert spec.fixed["device"] == "cuda:1", (name, images)
    assert method_spec("anoean", images=False, quick=False).fixed["device"] == "cpu"  # default
    for name in ("ocsvm", "svm"):
        assert "device" not in method_spec(name, images=False, quick=True, device="cuda").fixed


def test_reproduce_refuses_a_missing_gpu_before_any_run(tmp_path) -> None:
    import torch

    from anoean.experiments import reproduce

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        reproduce(experiments=["nsl-kdd"], methods=["anoean"], seeds=1, out=tmp_path, device="cuda")
    assert not (tmp_path / "runs.jsonl").exists()
    from click.testing import CliRunner

    from anoean.cli import main

    res = CliRunner().invoke(main, ["reproduce", "--out", str(tmp_path), "--device", "cuda"])
    assert res.exit_code == 1 and "CUDA is not available" in res.output
