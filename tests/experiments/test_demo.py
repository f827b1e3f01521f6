"""The README's first command (`anoean demo`) and its Python example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
from click.testing import CliRunner
from conftest import REPO

from anoean.cli import main
from anoean.experiments.demo import digits_split, unseen_kinds_split


def test_digits_split_has_unseen_digits():
    s = digits_split(3, seed=1)
    assert s.y_train.sum() >= 1 and (s.y_train == 0).sum() > 50
    assert len(s.seen) == 3 and 3 not in s.seen
    unseen = set(range(10)) - {3} - set(s.seen)
    test_anomaly_digits = set(s.c_test[s.y_test == 1].tolist())
    assert test_anomaly_digits & unseen  # the test set holds digits never seen in training
    assert set(s.c_test[s.y_test == 0].tolist()) == {3}
    # train, validation and test rows are distinct images
    rows = lambda X: {r.tobytes() for r in X}  # noqa: E731
    assert not rows(s.X_train) & rows(s.X_test)


def test_unseen_kinds_split_keeps_the_unseen_digits_out_of_training_and_validation():
    s = unseen_kinds_split((0, 1, 2, 3, 4), n_seen=2, seed=3)
    others = {5, 6, 7, 8, 9}
    assert set(s.seen) <= others and len(s.seen) == 2
    assert set(s.c_test[s.y_test == 0].tolist()) <= {0, 1, 2, 3, 4}
    # training and validation anomalies are of the seen digits only; the test has the others
    rows = lambda X: {r.tobytes() for r in X}  # noqa: E731
    unseen_test = s.X_test[(s.y_test == 1) & ~np.isin(s.c_test, s.seen)]
    assert len(unseen_test) > 0.4 * (s.y_test == 1).sum()
    assert not rows(unseen_test) & (rows(s.X_train) | rows(s.X_val))
    assert not rows(s.X_train) & rows(s.X_test)
    assert (s.y_test == 1).sum() == (s.y_test == 0).sum()


def test_demo_command_prints_metrics_for_every_method():
    res = CliRunner().invoke(main, ["demo", "--max-epochs", "3", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert list(out["methods"]) == [
        "AnoEANPlus",
        "AnoEAN",
        "SVM (RBF, class-weighted)",
        "OCSVM (RBF)",
    ]
    for m in out["methods"].values():
        assert {"aucpr", "best_f1", "false_alarm", "recall", "auroc_unseen"} <= set(m)
        assert 0.2 < m["aucpr"] <= 1.0  # test set is half anomalies: chance is 0.5
    res = CliRunner().invoke(main, ["demo", "--max-epochs", "3", "--quiet", "--normal", "1,7"])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "AUC-PR" in text and "never seen in training" in text and "best AUC-PR here" in text
    assert "normal digits [1, 7]" in text
    assert "warning" not in res.output  # the blank corner pixels are not reported each fit
    bad = CliRunner().invoke(main, ["demo", "--normal", "x"])
    assert bad.exit_code != 0 and "digits 0-9" in bad.output


def test_readme_python_example_runs(tmp_path):
    readme = (REPO / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    scores = np.array(re.findall(r"[\d.]+", proc.stdout.split("]")[0]), dtype=float)
    assert scores[1] > scores[0]  # the far-off row scores higher
    assert "-1" in proc.stdout.split("]")[1]


def test_readme_starts_with_install_and_test_commands():
    readme = (REPO / "README.md").read_text()
    first_block = re.findall(r"```bash\n(.*?)```", readme, re.S)[0].strip().splitlines()
    assert (
        first_block[0].startswith("pip install torch==2.13.0") and "anoean demo" in first_block[0]
    )
    assert "[dev]" not in first_block[0]  # the demo's install pulls no test or lint tools
    assert first_block[1].endswith("python -m pytest -q") and "[dev]" in first_block[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and "ANOEAN_DATA" in ci
