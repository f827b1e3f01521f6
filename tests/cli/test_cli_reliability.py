"""The command line never loses data and never passes an unscorable row as normal: output
paths, --overwrite, SIGTERM, extreme values under --on-error, unknown and empty categories,
NA tokens, and the fit-time warnings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _cli_helpers import FAST, fails, flows, run, write_table

SRC = str(Path(__file__).resolve().parents[2] / "src")


# --------------------------------------------------------------------------- fit --out
def test_fit_refuses_a_non_model_directory_before_training(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    t0 = time.perf_counter()
    res = run(
        "fit", data_dir / "train.csv", "--label-column", "is_attack", "--out", tmp_path,
        "--param", "max_epochs=500", "--param", "device=cpu", "--quiet",
    )  # fmt: skip
    fails(res, "not an anoean model directory")
    assert time.perf_counter() - t0 < 20  # refused before 500 epochs of training
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_fit_over_a_model_needs_overwrite(model: Path, data_dir: Path) -> None:
    before = (model / "pipeline.json").read_bytes()
    args = ["fit", data_dir / "train.csv", "--label-column", "is_attack", "--out", model, *FAST]
    fails(run(*args), "--overwrite")
    assert (model / "pipeline.json").read_bytes() == before
    (model / "NOTES").write_text("kept")
    res = run(*args, "--exclude", "id", "--seed", "3", "--overwrite")
    assert res.exit_code == 0, res.output
    assert (model / "pipeline.json").read_bytes() != before
    assert (model / "NOTES").read_text() == "kept"
    (model / "NOTES").unlink()


# --------------------------------------------------------------------------- score --out
def test_score_refuses_an_existing_output(model: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    assert run("score", model, data_dir / "test.csv", "--out", out).exit_code == 0
    first = out.read_bytes()
    fails(run("score", model, data_dir / "test.csv", "--out", out), "already exists", "--overwrite")
    assert out.read_bytes() == first
    res = run("score", model, data_dir / "test.csv", "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    fails(
        run("score", model, data_dir / "test.csv", "--out", data_dir / "test.csv", "--overwrite"),
        "replace the input",
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_killed_score_leaves_nothing_behind(model: Path, tmp_path: Path, sig) -> None:
    big = tmp_path / "big.csv"
    write_table(flows(200_000, seed=4), big)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "anoean", "score", str(model), str(big),
         "--out", str(out_dir / "s.parquet"), "--batch-rows", "200", "--engine", "torch"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # a suite started in the background (nohup ... &) runs with SIGINT ignored, and a
        # child inherits that: it would then rightly ignore the Ctrl-C this test sends
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not os.listdir(out_dir):  # the temporary file appears
        time.sleep(0.01)
    assert os.listdir(out_dir), "scoring never started writing"
    # small batches keep the run going for seconds after its first write, so that the signal
    # lands mid-run even on a loaded machine (with 2,000-row batches a loaded CI machine once
    # finished all 200,000 rows before the signal arrived)
    assert proc.poll() is None, "scoring finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert os.listdir(out_dir) == [], os.listdir(out_dir)
    assert b"Traceback" not in proc.stderr.read()


# --------------------------------------------------------------------------- extreme values
def _with_value(data_dir: Path, tmp_path: Path, row: int, column: int, value: str) -> Path:
    lines = (data_dir / "test.csv").read_text().splitlines()
    fields = lines[row + 1].split(",")
    fields[column] = value
    lines[row + 1] = ",".join(fields)
    path = tmp_path / "x.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("value", ["1e45", "-1e300", "1e308"])
def test_extreme_value_is_never_scored_as_normal(
    model: Path, data_dir: Path, tmp_path: Path, value: str
) -> None:
    path = _with_value(data_dir, tmp_path, 120, 2, value)  # src_bytes, in the 3rd batch of 50
    out = tmp_path / "s.parquet"
    fails(
        run("score", model, path, "--out", out, "--batch-rows", "50"),
        "row 120 (CSV line 122)",
        "'src_bytes'",
    )
    assert not out.exists()
    res = run("score", model, path, "--out", out, "--batch-rows", "50", "--on-error", "flag")
    assert res.exit_code == 0, res.output
    got = pq.read_table(out)
    assert got.num_rows == 300  # the stream went on past the bad row
    s = np.asarray(got.column("anomaly_score").to_pylist(), dtype=float)
    assert np.isnan(s).sum() == 1 and np.isnan(s[120])  # null, not a NaN number
    assert got.column("is_anomaly")[120].as_py() is True
    assert "src_bytes" in got.column("score_error")[120].as_py()
    assert got.column("score_error").null_count == 299
    assert np.isfinite(np.delete(s, 120)).all()


def test_api_refuses_values_that_overflow_the_model() -> None:
    from _cli_helpers import blobs, small_anoean

    X, y = blobs(300, 30, p=5)
    X *= 0.25  # standard deviations below 1: the input scaling multiplies
    det = small_anoean(X, y, max_epochs=1)
    Xq = X[:10].astype(np.float64)
    Xq[4, 2] = 3.4e38  # finite in float32, overflows the encoder's input scaling
    with pytest.raises(ValueError, match=r"row 4.*column 2"):
        det.anomaly_score(Xq)
    with pytest.raises(ValueError, match=r"row 4.*column 2"):
        det.predict(Xq)
    Xq[4, 2] = 1e300
    with pytest.raises(ValueError, match=r"1e\+300 at row 4, column 2.*float32"):
        det.anomaly_score(Xq)
    Xq[4, 2] = 1e30  # large but representable: a finite, very high score
    s = det.anomaly_score(Xq)
    assert np.isfinite(s).all() and s[4] == s.max() and det.predict(Xq)[4] == -1


# --------------------------------------------------------------------------- categories
def test_unknown_categories_are_counted_and_warned(
    model: Path, data_dir: Path, tmp_path: Path
) -> None:
    data = flows(300, seed=1)
    data["service"] = data["service"].astype(object)
    data["service"][[5, 9, 11]] = "gopher"
    data["proto"] = data["proto"].astype(object)
    data["proto"][7] = "sctp"
    path = write_table(data, tmp_path / "unk.csv")
    res = run("score", model, path, "--out", tmp_path / "s.parquet")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "'service'" in res.output and "3 value(s)" in res.output
    assert "categories not seen in fit" in res.output and "'service' 3" in res.output
    res = run("score", model, path, "--out", tmp_path / "t.parquet", "--json")
    summary = json.loads(res.output[res.output.index("{") :])
    assert summary["unknown_categories"] == {"proto": 1, "service": 3}


def test_empty_category_field_is_refused(model: Path, data_dir: Path, tmp_path: Path) -> None:
    path = _with_value(data_dir, tmp_path, 40, 5, "")  # service
    fails(
        run("score", model, path, "--out", tmp_path / "s.parquet"),
        "row 40 (CSV line 42)",
        "'service'",
        "missing value",
    )


# --------------------------------------------------------------------------- NA tokens
def test_na_tokens_are_missing_values_not_categories(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "train.csv").read_text().splitlines()
    for i, tok in ((10, "n/a"), (20, "?"), (30, "-")):
        fields = lines[i + 1].split(",")
        fields[1] = tok  # duration
        lines[i + 1] = ",".join(fields)
    path = tmp_path / "na.csv"
    path.write_text("\n".join(lines) + "\n")
    res = run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m", *FAST)
    # missing values follow the NaN policy at fit: refused, naming the column and row
    fails(res, "'duration'", "missing value", "row 10")
    assert "duration=" not in res.output  # not one-hot encoded into hundreds of features


def test_fit_warns_about_constant_and_squashed_columns(tmp_path: Path) -> None:
    data = flows(800, seed=0)
    data["const"] = np.full(800, 7.0)
    data["bytes"] = np.random.default_rng(0).normal(100, 10, 800).round(3)
    data["bytes"][17] = 1e12
    path = write_table(data, tmp_path / "t.csv")
    res = run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m", *FAST)
    assert res.exit_code == 0, res.output
    assert "constant column(s)" in res.output and "'const'" in res.output
    assert "squashes" in res.output and "'bytes'" in res.output and "1e+12" in res.output


def test_fit_warns_about_many_categories(tmp_path: Path) -> None:
    data = flows(800, seed=0)
    data["host"] = np.array([f"h{i % 300}" for i in range(800)])
    path = write_table(data, tmp_path / "t.csv")
    res = run(
        "fit", path, "--label-column", "is_attack", "--out", tmp_path / "m",
        "--max-categories", "50", *FAST,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "more than 50 levels" in res.output and "'host': 300" in res.output


def test_too_few_rows_to_train_is_named(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("a,b,is_attack\n1,2,0\n3,4,0\n")
    fails(
        run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m", *FAST),
        "2 rows (2 normal) are too few",
    )
    assert not (tmp_path / "m").exists()
