"""Smoke test of the ADBench harness (benchmarks/adbench.py): 2 small datasets, 1 seed, few
epochs; the protocol's split and label revelation; resuming; the summary."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ANOEAN_ADBENCH", ROOT.parent / "shared" / "adbench"))
pytestmark = pytest.mark.skipif(
    not (DATA / "14_glass.npz").is_file(), reason=f"no ADBench datasets in {DATA}"
)


@pytest.fixture(scope="module")
def adbench():
    spec = importlib.util.spec_from_file_location("adbench", ROOT / "benchmarks" / "adbench.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["adbench"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_split_follows_the_protocol(adbench):
    X, y = adbench.load_dataset(DATA, "27_PageBlocks")
    s = adbench.make_split(X, y, seed=3, label_fraction=0.1)
    n_train, n_test = s.X_train.shape[0], s.X_test.shape[0]
    assert n_train + n_test == X.shape[0] and abs(n_test / X.shape[0] - 0.3) < 0.01
    # stratified: the test part keeps the anomaly rate
    assert abs(s.y_test.mean() - y.mean()) < 0.01
    # min-max fitted on the training part
    assert s.X_train.min() == 0.0 and s.X_train.max() == 1.0
    # ceil(10% of the training anomalies) revealed; the rest hide among the y=0 rows
    n_anom_train = int(y.sum()) - int(s.y_test.sum())
    assert int(s.y_train.sum()) == math.ceil(0.1 * n_anom_train)
    assert s.n_hidden == n_anom_train - int(s.y_train.sum())
    again = adbench.make_split(X, y, seed=3, label_fraction=0.1)
    np.testing.assert_array_equal(again.X_test, s.X_test)  # a seed fixes every draw
    none = adbench.make_split(X, y, seed=3, label_fraction=0.0)
    assert none.y_train.sum() == 0
    # the development split never touches the test part: it is carved from the training part
    dev = adbench.make_split(X, y, seed=3, label_fraction=0.1, split="dev")
    assert dev.X_train.shape[0] + dev.X_test.shape[0] == n_train


def test_subsample_caps_large_datasets(adbench):
    X, y = adbench.load_dataset(DATA, "27_PageBlocks")
    s = adbench.make_split(X, y, seed=0, label_fraction=0.1, max_rows=1000)
    assert s.X_train.shape[0] + s.X_test.shape[0] == 1000
    assert abs(s.y_test.mean() - y.mean()) < 0.02


def test_smoke_run_resumes_and_summarises(adbench, tmp_path):
    methods = ["anoeanplus", "anoean", "svc", "iforest", "ocsvm"]
    for extra, module in (("xgbod", "pyod"), ("deepsad", "deepod")):
        if importlib.util.find_spec(module) is not None:
            methods.append(extra)
    out, summary = tmp_path / "runs.csv", tmp_path / "adbench.md"
    args = ["--datasets", "14_glass,42_WBC", "--seeds", "1", "--quick", "--out", str(out)]
    assert adbench.main([*args, "--methods", ",".join(methods), "--summary", str(summary)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * len(methods)
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows if r["error"]]
    for r in rows:
        assert 0.0 <= float(r["aucpr"]) <= 1.0 and 0.0 <= float(r["auroc"]) <= 1.0
        assert r["commit"] and "torch" in r["versions"]
    # resumable: nothing is run twice
    adbench.main([*args, "--methods", ",".join(methods)])
    assert len(list(csv.DictReader(out.open()))) == len(rows)
    text = summary.read_text()
    assert "| method | mean AUC-PR" in text and "anoeanplus" in text and "14_glass" in text


def test_summary_ranks_and_counts_failures_at_chance(adbench):
    def row(d, m, ap, status="ok"):
        return {
            "dataset": d,
            "seed": "0",
            "method": m,
            "status": status,
            "aucpr": str(ap),
            "auroc": "0.5",
            "fit_s": "1",
            "score_s": "0.1",
            "test_anomaly_rate": "0.1",
        }

    rows = [
        row("a", "m1", 0.9),
        row("a", "m2", 0.5),
        row("b", "m1", 0.2),
        row("b", "m2", "", status="error"),
    ]
    s = adbench.summarise(rows, ["m1", "m2"])
    pm = s["per_method"]
    assert pm["m1"]["avg_rank"] == 1.0 and pm["m2"]["avg_rank"] == 2.0
    assert pm["m1"]["wins"] == 2 and pm["m2"]["failed"] == 1
    assert pm["m2"]["mean_aucpr"] == pytest.approx((0.5 + 0.1) / 2)  # failure at chance
