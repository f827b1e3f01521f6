"""The command line on flow-record tables: fit, score, evaluate, export, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _cli_helpers import ATOL, FAST, RTOL, fails, flows, run, write_table

from anoean.serve.pipeline import load_pipeline
from anoean.serve.scoring import score_batch

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _table(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    return pq.read_table(path)


# --------------------------------------------------------------------------- happy paths
def test_fit_writes_a_complete_model_directory(model: Path) -> None:
    import anoean

    assert sorted(os.listdir(model)) == [
        "config.json",
        "pipeline.json",
        "preprocessing.json",
        "weights.safetensors",
    ]
    meta = json.loads((model / "pipeline.json").read_text())
    assert meta["label_column"] == "is_attack" and meta["method"] == "anoeanplus"
    assert "id" not in meta["input_types"] and "is_attack" not in meta["input_types"]
    # the detector part is an ordinary saved detector
    assert type(anoean.load(model)).__name__ == "AnoEANPlus"  # the default --method


def test_target_false_alarm_sets_the_threshold_on_validation_normals(data_dir: Path) -> None:
    out = data_dir / "fa"
    res = run(
        "fit",
        data_dir / "train.csv",
        "--label-column",
        "is_attack",
        "--exclude",
        "id",
        "--target-false-alarm",
        "0.1",
        "--out",
        out,
        "--json",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    n_val_normal = rep["validation_rows"] - round(
        rep["validation_rows"] * rep["anomalies"] / rep["rows"]
    )
    assert abs(rep["validation"]["false_positive_rate"] - 0.1) <= 2.0 / n_val_normal
    assert json.loads((out / "config.json").read_text())["params"]["target_false_alarm"] == 0.1


@pytest.mark.parametrize("src,dst", [("test.parquet", "s.parquet"), ("test.csv", "s.csv")])
def test_score_keeps_every_row_and_appends_scores(
    model: Path, data_dir: Path, tmp_path: Path, src: str, dst: str
) -> None:
    out = tmp_path / dst
    res = run("score", model, data_dir / src, "--out", out, "--batch-rows", "64")
    assert res.exit_code == 0, res.output
    inp, got = _table(data_dir / src), _table(out)
    assert got.column_names == [*inp.column_names, "anomaly_score", "is_anomaly"]
    assert got.schema.remove(got.num_columns - 1).remove(got.num_columns - 2) == inp.schema
    assert got.num_rows == inp.num_rows
    assert got.column("id").to_pylist() == inp.column("id").to_pylist()  # order kept
    pipe = load_pipeline(model)
    expected = pipe.detector.anomaly_score(pipe.features(inp))
    s = got.column("anomaly_score").to_numpy()
    np.testing.assert_allclose(s, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got.column("is_anomaly").to_numpy(), s > pipe.threshold)
    assert f"scored {inp.num_rows} rows" in res.output
    assert [p.name for p in tmp_path.iterdir()] == [dst]  # no temporary files left


def test_batch_size_does_not_change_the_scores(model: Path, data_dir: Path, tmp_path: Path) -> None:
    run(
        "score",
        model,
        data_dir / "test.parquet",
        "--out",
        tmp_path / "a.parquet",
        "--batch-rows",
        "7",
    )
    run("score", model, data_dir / "test.parquet", "--out", tmp_path / "b.parquet")
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.drop_columns(["anomaly_score"]).equals(b.drop_columns(["anomaly_score"]))
    # BLAS blocks differ with the batch shape: float32 round-off only
    np.testing.assert_allclose(
        a.column("anomaly_score").to_numpy(), b.column("anomaly_score").to_numpy(), rtol=RTOL
    )


def test_engines_agree_and_torch_is_the_detector(
    model: Path, data_dir: Path, tmp_path: Path
) -> None:
    pipe = load_pipeline(model, engine="torch")
    t = pq.read_table(data_dir / "test.parquet")
    ref = pipe.detector.anomaly_score(pipe.features(t))  # float64, as written
    for engine in ("torch", "numpy", "onnx", "auto"):
        out = tmp_path / f"{engine}.parquet"
        res = run("score", model, data_dir / "test.parquet", "--out", out, "--engine", engine)
        assert res.exit_code == 0, res.output
        s = pq.read_table(out).column("anomaly_score").to_numpy()
        if engine == "torch":
            np.testing.assert_array_equal(s, ref)
        else:
            np.testing.assert_allclose(s, ref, rtol=RTOL, atol=ATOL)
    assert load_pipeline(model).engine == "onnx"  # auto picks ONNX Runtime when installed


def test_scoring_process_does_not_import_torch(model: Path, data_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from anoean.cli import main\n"
        f"main(['score', {str(model)!r}, {str(data_dir / 'test.csv')!r}, '--out', "
        f"{str(tmp_path / 's.parquet')!r}], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert res.returncode == 0, res.stderr
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 300


def test_score_batch_is_a_pure_function_of_model_dir_and_batch(model: Path, data_dir: Path) -> None:
    batch = pq.read_table(data_dir / "test.parquet").to_batches()[0]
    a = score_batch(str(model), batch)
    b = score_batch(model, batch)  # served from the per-process cache
    assert a.equals(b) and a.num_rows == batch.num_rows
    from anoean.serve.pipeline import get_pipeline

    assert get_pipeline(model) is get_pipeline(str(model))


def test_evaluate_prints_the_papers_metrics(model: Path, data_dir: Path) -> None:
    from anoean.core.metrics import evaluate

    res = run("evaluate", model, data_dir / "test.parquet", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    pipe = load_pipeline(model)
    t = pq.read_table(data_dir / "test.parquet")
    ref = evaluate(t.column("is_attack").to_numpy(), pipe.detector.anomaly_score(pipe.features(t)))
    for k in ("aucpr", "best_f1", "recall", "auroc"):
        assert got[k] == pytest.approx(ref[k], rel=1e-6)
    # the two rates that "false alarm" used to name, each under its own name
    assert got["false_discovery_rate"] == pytest.approx(ref["false_alarm"], rel=1e-6)
    assert "false_alarm" not in got and "false_alarm_at_threshold" not in got
    scores = pipe.detector.anomaly_score(pipe.features(t))
    normal = t.column("is_attack").to_numpy() == 0
    assert got["false_positive_rate"] == pytest.approx((scores[normal] > pipe.threshold).mean())
    assert got["false_positive_budget"] == 0.05  # the default target_false_alarm
    text = run("evaluate", model, data_dir / "test.parquet").output
    assert "AUC-PR" in text and "AUROC" in text and "best F1" in text
    assert "of the alarms are false" in text and "false-positive rate" in text
    assert "budget 5.0%" in text


def test_evaluate_warns_when_the_false_positive_budget_is_exceeded() -> None:
    from anoean.serve.evaluate import warn_over_budget

    m = {"false_positive_rate": 0.074}
    with pytest.warns(UserWarning, match=r"7\.4% of the normal rows \(740 of 10000\).*1\.0%"):
        assert warn_over_budget(m, 10_000, 0.01, "KDDTest+")
    assert m["false_positive_budget_exceeded"] is True
    # within sampling noise of the budget: 12 of 1,000 under a 1% budget is no evidence
    m = {"false_positive_rate": 0.012}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_over_budget(m, 1000, 0.01, "data")
    assert m["false_positive_budget_exceeded"] is False


def test_export_onnx_scores_preprocessed_rows_like_the_cli(
    model: Path, data_dir: Path, tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    from anoean.export import NumpyScorer

    res = run("export", model, "--onnx", tmp_path / "m.onnx")
    assert res.exit_code == 0, res.output
    run("score", model, data_dir / "test.parquet", "--out", tmp_path / "s.parquet")
    cli_scores = pq.read_table(tmp_path / "s.parquet").column("anomaly_score").to_numpy()
    pipe = load_pipeline(model)
    X = pipe.features(pq.read_table(data_dir / "test.parquet"))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": X})[0], cli_scores, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(NumpyScorer.load(model).score(X), cli_scores, rtol=RTOL, atol=ATOL)


def test_methods_lists_anoean() -> None:
    res = run("methods")
    assert res.exit_code == 0
    names = [line.split()[0] for line in res.output.splitlines() if line.strip()]
    assert "anoean" in names


def test_installed_entry_point_runs_as_a_module(
    model: Path, data_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "anoean",
            "score",
            str(model),
            str(data_dir / "test.csv"),
            "--out",
            str(tmp_path / "s.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 300
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "anoean",
            "score",
            str(model),
            str(tmp_path / "nope.csv"),
            "--out",
            str(tmp_path / "x.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert bad.returncode == 1 and "nope.csv: no such file" in bad.stderr
    assert "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- labels
def _small(tmp_path: Path, labels: list, name: str = "lab.csv") -> Path:  # type: ignore[type-arg]
    data = flows(len(labels), seed=3)
    data["is_attack"] = np.asarray(labels, dtype=object)
    return write_table(data, tmp_path / name)


def test_textual_labels_are_accepted(tmp_path: Path) -> None:
    labels = ["normal"] * 90 + ["Anomaly"] * 10
    res = run(
        "fit",
        _small(tmp_path, labels),
        "--label-column",
        "is_attack",
        "--out",
        tmp_path / "m",
        "--json",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["anomalies"] == 10


def test_label_values_outside_the_set_need_a_mapping(tmp_path: Path) -> None:
    labels = ["normal"] * 80 + ["neptune"] * 10 + ["smurf"] * 10
    rng = np.random.default_rng(0)
    labels = list(rng.permutation(labels))
    first = next(i for i, v in enumerate(labels) if v != "normal")
    path = _small(tmp_path, labels)
    fails(
        run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m"),
        str(path),
        "'is_attack'",
        f"row {first} (CSV line {first + 2})",
        "--anomaly-value",
    )
    assert not (tmp_path / "m").exists()
    res = run(
        "fit",
        path,
        "--label-column",
        "is_attack",
        "--normal-value",
        "normal",
        "--out",
        tmp_path / "m",
        "--json",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["anomalies"] == 20
    res = run(
        "fit",
        path,
        "--label-column",
        "is_attack",
        "--anomaly-value",
        "neptune",
        "--normal-value",
        "normal",
        "--out",
        tmp_path / "m2",
    )
    fails(res, "'smurf'", "neither")


def test_anomaly_value_maps_the_rest_to_normal(tmp_path: Path) -> None:
    from anoean.data.tables import parse_labels

    col = pa.array(["ok", "attack", "ok", "ATTACK "])
    assert parse_labels(col, anomaly_values=["attack"]).tolist() == [0, 1, 0, 1]
    assert parse_labels(pa.array([True, False])).tolist() == [1, 0]
    assert parse_labels(pa.array([0.0, 1.0])).tolist() == [0, 1]


# --------------------------------------------------------------------------- bad input: fit
def test_missing_label_column(data_dir: Path, tmp_path: Path) -> None:
    fails(
        run("fit", data_dir / "train.csv", "--label-column", "label", "--out", tmp_path / "m"),
        "train.csv",
        "label column 'label' not found",
        "is_attack",
    )
    assert not (tmp_path / "m").exists()


def test_no_normal_rows(tmp_path: Path) -> None:
    path = _small(tmp_path, [1] * 30)
    fails(
        run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m"),
        str(path),
        "'is_attack'",
        "no normal rows",
    )


def test_missing_label_value_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "nl.parquet"
    data = flows(50, seed=2)
    write_table(data, path)
    t = pq.read_table(path)
    lab = t.column("is_attack").to_pylist()
    lab[17] = None
    pq.write_table(
        t.set_column(t.column_names.index("is_attack"), "is_attack", pa.array(lab)), path
    )
    fails(
        run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m"),
        "nl.parquet",
        "'is_attack'",
        "missing value at row 17",
    )


@pytest.mark.parametrize("content", ["", '"a","b","is_attack"\n'])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    fails(run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m"), "empty.csv")
    assert not (tmp_path / "m").exists()


def test_empty_parquet_at_score_time(model: Path, data_dir: Path, tmp_path: Path) -> None:
    t = pq.read_table(data_dir / "test.parquet").slice(0, 0)
    pq.write_table(t, tmp_path / "empty.parquet")
    fails(
        run("score", model, tmp_path / "empty.parquet", "--out", tmp_path / "s.parquet"),
        "empty.parquet",
        "no data rows",
    )
    assert not (tmp_path / "s.parquet").exists()


def _malformed_csv(src: Path, dst: Path, line: int) -> Path:
    lines = src.read_text().splitlines()
    lines[line - 1] += ",999"  # one field too many
    dst.write_text("\n".join(lines) + "\n")
    return dst


def test_malformed_csv_rows(model: Path, data_dir: Path, tmp_path: Path) -> None:
    bad = _malformed_csv(data_dir / "train.csv", tmp_path / "bad.csv", 42)
    fails(
        run("fit", bad, "--label-column", "is_attack", "--out", tmp_path / "m"),
        "bad.csv",
        "malformed CSV at line 42",
        "expected 7 fields, got 8",
    )
    bad = _malformed_csv(data_dir / "test.csv", tmp_path / "bad2.csv", 250)
    fails(
        run("score", model, bad, "--out", tmp_path / "s.parquet", "--batch-rows", "50"),
        "bad2.csv",
        "line 250",
    )
    assert not (tmp_path / "s.parquet").exists()


def test_nan_in_training_data(data_dir: Path, tmp_path: Path) -> None:
    data = flows(200, seed=4)
    data["src_bytes"] = data["src_bytes"].astype(np.float64)
    data["src_bytes"][33] = np.nan
    path = write_table(data, tmp_path / "nan.parquet")
    fails(
        run("fit", path, "--label-column", "is_attack", "--out", tmp_path / "m"),
        "nan.parquet",
        "'src_bytes'",
        "row 33",
    )


def test_typo_in_a_numeric_column_is_not_one_hot_encoded(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "train.csv").read_text().splitlines()
    fields = lines[11].split(",")
    fields[2] = "12x"  # src_bytes
    lines[11] = ",".join(fields)
    (tmp_path / "typo.csv").write_text("\n".join(lines) + "\n")
    fails(
        run("fit", tmp_path / "typo.csv", "--label-column", "is_attack", "--out", tmp_path / "m"),
        "typo.csv",
        "'src_bytes'",
        "row 10 (CSV line 12)",
        "'12x'",
    )


def test_out_refuses_to_replace_a_foreign_directory(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.txt").write_text("precious")
    fails(
        run(
            "fit",
            data_dir / "train.csv",
            "--label-column",
            "is_attack",
            "--out",
            tmp_path / "docs",
            *FAST,
        ),
        "not an anoean model directory",
    )
    assert (tmp_path / "docs" / "keep.txt").read_text() == "precious"


def test_unknown_detector_parameter(data_dir: Path, tmp_path: Path) -> None:
    fails(
        run(
            "fit",
            data_dir / "train.csv",
            "--label-column",
            "is_attack",
            "--out",
            tmp_path / "m",
            "--param",
            "max_epoch=3",
        ),
        "max_epoch",
        "max_epochs",
    )
    fails(
        run(
            "fit",
            data_dir / "train.csv",
            "--label-column",
            "is_attack",
            "--out",
            tmp_path / "m",
            "--method",
            "nosuch",
        ),
        "unknown method 'nosuch'",
        "anoean",
    )


# --------------------------------------------------------------------------- bad input: score
def test_column_missing_at_score_time(model: Path, data_dir: Path, tmp_path: Path) -> None:
    data = flows(300, seed=1)
    del data["dst_bytes"]
    path = write_table(data, tmp_path / "nocol.parquet")
    fails(
        run("score", model, path, "--out", tmp_path / "s.parquet"),
        "nocol.parquet",
        "['dst_bytes']",
        "missing",
    )
    assert not (tmp_path / "s.parquet").exists()


def test_extra_column_is_ignored_with_a_warning(
    model: Path, data_dir: Path, tmp_path: Path
) -> None:
    data = flows(300, seed=1)
    data["new_feature"] = np.arange(300) * 1000.0
    path = write_table(data, tmp_path / "extra.parquet")
    res = run("score", model, path, "--out", tmp_path / "s.parquet")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "['new_feature']" in res.output
    got = pq.read_table(tmp_path / "s.parquet")
    run("score", model, data_dir / "test.parquet", "--out", tmp_path / "plain.parquet")
    plain = pq.read_table(tmp_path / "plain.parquet")
    assert got.column("new_feature").to_pylist() == data["new_feature"].tolist()
    assert got.column("anomaly_score").equals(plain.column("anomaly_score"))


def test_unknown_categories(model: Path, data_dir: Path, tmp_path: Path) -> None:
    data = flows(300, seed=1)
    data["service"] = data["service"].astype(object)
    data["service"][123] = "gopher"
    path = write_table(data, tmp_path / "unk.parquet")
    # default policy from fit: ignore (all-zero one-hot), the row is scored
    res = run("score", model, path, "--out", tmp_path / "s.parquet")
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "s.parquet").column("anomaly_score").null_count == 0
    # strict: the row cannot be scored
    fails(
        run("score", model, path, "--out", tmp_path / "t.parquet", "--strict-categories"),
        "unk.parquet",
        "row 123",
        "'service'",
        "unknown category 'gopher'",
    )
    assert not (tmp_path / "t.parquet").exists()
    # strict + flag: every row kept, that one marked
    res = run(
        "score",
        model,
        path,
        "--out",
        tmp_path / "f.parquet",
        "--strict-categories",
        "--on-error",
        "flag",
    )
    assert res.exit_code == 0, res.output
    got = pq.read_table(tmp_path / "f.parquet")
    assert got.num_rows == 300
    s = got.column("anomaly_score")
    assert (
        s.null_count == 1
        and s[123].as_py() is None
        and got.column("is_anomaly")[123].as_py() is True  # unscorable: flagged, never normal
    )
    assert "unknown category 'gopher'" in got.column("score_error")[123].as_py()
    assert got.column("score_error").null_count == 299
    assert "row 123" in res.output and "not scored" in res.output


@pytest.mark.parametrize("value,word", [("nan", "NaN"), ("inf", "infinite"), ("", "missing")])
def test_nan_and_inf_at_score_time(
    model: Path, data_dir: Path, tmp_path: Path, value: str, word: str
) -> None:
    lines = (data_dir / "test.csv").read_text().splitlines()
    row = 201  # data row 201 is CSV line 203, in the fifth batch of 50
    fields = lines[row + 1].split(",")
    fields[1] = value  # duration
    lines[row + 1] = ",".join(fields)
    path = tmp_path / "nan.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "s.parquet"
    fails(
        run("score", model, path, "--out", out, "--batch-rows", "50"),
        "nan.csv",
        "'duration'",
        f"row {row} (CSV line {row + 2})",
        word,
    )
    assert not out.exists() and list(tmp_path.iterdir()) == [path]  # nothing half-written
    res = run("score", model, path, "--out", out, "--on-error", "flag", "--batch-rows", "50")
    assert res.exit_code == 0, res.output
    got = pq.read_table(out)
    assert got.num_rows == 300 and got.column("anomaly_score").null_count == 1
    assert got.column("anomaly_score")[row].as_py() is None


def test_non_numeric_value_at_score_time(model: Path, data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "test.csv").read_text().splitlines()
    fields = lines[8].split(",")
    fields[3] = "lots"  # dst_bytes
    lines[8] = ",".join(fields)
    (tmp_path / "txt.csv").write_text("\n".join(lines) + "\n")
    fails(
        run("score", model, tmp_path / "txt.csv", "--out", tmp_path / "s.parquet"),
        "txt.csv",
        "'dst_bytes'",
        "row 7 (CSV line 9)",
        "'lots'",
    )


def test_failure_keeps_an_existing_output_file(model: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(b"previous results")
    data = flows(300, seed=1)
    data["duration"] = data["duration"].astype(np.float64)
    data["duration"][290] = np.inf
    path = write_table(data, tmp_path / "late.parquet")
    fails(run("score", model, path, "--out", out, "--batch-rows", "32"), "already exists")
    fails(run("score", model, path, "--out", out, "--batch-rows", "32", "--overwrite"), "row 290")
    assert out.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.parquet", "s.parquet"]


# --------------------------------------------------------------------------- bad model dirs
@pytest.mark.parametrize(
    "damage", ["weights", "preprocessing", "pipeline", "config", "threshold", "nodir"]
)
def test_corrupted_or_tampered_model(
    model: Path, data_dir: Path, tmp_path: Path, damage: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    if damage == "weights":
        data = bytearray((bad / "weights.safetensors").read_bytes())
        data[-5] ^= 0x10
        (bad / "weights.safetensors").write_bytes(bytes(data))
        expect = "SHA-256"
    elif damage == "preprocessing":
        pre = json.loads((bad / "preprocessing.json").read_text())
        pre["data_max"][0] *= 2  # a tampered scaling
        (bad / "preprocessing.json").write_text(json.dumps(pre, indent=1))
        expect = "preprocessing was damaged or modified"
    elif damage == "pipeline":
        (bad / "pipeline.json").unlink()
        expect = "pipeline.json is missing"
    elif damage == "config":
        (bad / "config.json").write_text("{not json")
        expect = "config.json does not match"
    elif damage == "threshold":
        cfg = json.loads((bad / "config.json").read_text())
        cfg["state"]["threshold_"] *= 10  # silence most alarms
        (bad / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        expect = "threshold, parameters) was damaged or modified"
    else:
        bad = tmp_path / "nothing"
        expect = "no such model directory"
    for verb in (
        ["score", bad, data_dir / "test.parquet", "--out", tmp_path / "s.parquet"],
        ["evaluate", bad, data_dir / "test.parquet"],
    ):
        fails(run(*verb), str(bad), expect)
    assert not (tmp_path / "s.parquet").exists()


def test_a_baseline_method_runs_through_every_verb(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("anoean.baselines")
    out = tmp_path / "oc"
    res = run(
        "fit",
        data_dir / "train.csv",
        "--label-column",
        "is_attack",
        "--exclude",
        "id",
        "--method",
        "ocsvm",
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "pipeline.json").read_text())["detector_class"] == "OCSVM"
    res = run("score", out, data_dir / "test.parquet", "--out", tmp_path / "s.parquet")
    assert res.exit_code == 0, res.output
    pipe = load_pipeline(out)
    assert pipe.engine == "torch"  # the numpy and ONNX engines are AnoEAN-only
    got = pq.read_table(tmp_path / "s.parquet").column("anomaly_score").to_numpy()
    t = pq.read_table(data_dir / "test.parquet")
    np.testing.assert_allclose(got, pipe.detector.anomaly_score(pipe.features(t)), rtol=1e-6)
    assert run("evaluate", out, data_dir / "test.parquet").exit_code == 0
    fails(run("export", out, "--onnx", tmp_path / "x.onnx"), "OCSVM", "only AnoEAN")
    fails(
        run(
            "score",
            out,
            data_dir / "test.parquet",
            "--out",
            tmp_path / "t.parquet",
            "--engine",
            "numpy",
        ),
        "OCSVM",
        "--engine torch",
    )


def test_fit_without_a_label_column_trains_on_unlabelled_rows(tmp_path: Path) -> None:
    data = flows(200, seed=5)
    del data["is_attack"]
    src = write_table(data, tmp_path / "unlabelled.csv")
    res = run("fit", src, "--out", tmp_path / "m", "--json", *FAST)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["anomalies"] == 0 and out["rows"] == 200
    pipe = load_pipeline(tmp_path / "m")
    assert pipe.label_column is None and pipe.detector.generator_used_
    scored = run("score", tmp_path / "m", src, "--out", tmp_path / "s.csv")
    assert scored.exit_code == 0, scored.output
    # label values need the column they map
    fails(
        run("fit", src, "--out", tmp_path / "m2", "--anomaly-value", "x", *FAST),
        "without a label column",
    )


def test_fit_announces_how_training_ended(tmp_path: Path) -> None:
    data = flows(400, seed=6)
    # a validation signal that keeps improving would never stop: make it noisy and short
    res = run(
        "fit", write_table(data, tmp_path / "t.csv"), "--label-column", "is_attack",
        "--out", tmp_path / "m", "--method", "anoean", "--param", "max_epochs=30",
        "--param", "patience=1", "--param", "device=cpu", "--quiet", "--seed", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    fit = load_pipeline(tmp_path / "m").meta["fit"]
    assert {"epochs", "max_epochs", "best_epoch", "best_val_aucpr", "stopped_early"} <= set(fit)
    assert fit["max_epochs"] == 30 and 1 <= fit["best_epoch"] <= fit["epochs"] <= 30
    if fit["stopped_early"]:
        assert f"early stopping: stopped at epoch {fit['epochs']} of 30" in res.output
        assert fit["epochs"] == fit["best_epoch"] + 1  # patience 1
    else:
        assert f"trained {fit['epochs']} of 30 epochs" in res.output
    assert f"kept epoch {fit['best_epoch']} (validation AUC-PR {fit['best_val_aucpr']:.4f})" in (
        res.output
    )
    # the kernel baselines train no epochs and say nothing about them
    ocsvm = run(
        "fit", tmp_path / "t.csv", "--label-column", "is_attack", "--out", tmp_path / "o",
        "--method", "ocsvm", "--quiet",
    )  # fmt: skip
    assert ocsvm.exit_code == 0 and "kept epoch" not in ocsvm.output
    assert "epochs" not in load_pipeline(tmp_path / "o").meta["fit"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_and_quiet_work_before_and_after_the_verb(
    data_dir: Path, tmp_path: Path, where: str
) -> None:
    from click.testing import CliRunner

    from anoean.cli import main

    fit = ["fit", str(data_dir / "train.csv"), "--label-column", "is_attack", "--exclude", "id"]
    fit += ["--param", "max_epochs=1", "--param", "device=cpu", "--out", str(tmp_path / "m")]
    args = ["--quiet", *fit] if where == "before" else [*fit, "--quiet"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    # --quiet reached the detector: no progress bar (verbose=0), wherever it was given
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"]["verbose"] == 0
    loud = [*fit[:-1], str(tmp_path / "m2")]
    res = CliRunner().invoke(main, loud, catch_exceptions=False)
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["params"]["verbose"] == 1
    # -vv shows the traceback instead of the one-line error, before or after the verb
    bad = ["score", str(tmp_path / "missing"), str(data_dir / "test.parquet")]
    bad += ["--out", str(tmp_path / "s.parquet")]
    args = ["-vv", *bad] if where == "before" else [*bad, "-vv"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and res.exception is not None
    assert not isinstance(res.exception, SystemExit)  # raised, not turned into "Error: ..."
    res = CliRunner().invoke(main, bad)
    assert isinstance(res.exception, SystemExit) and "Error:" in res.output


def test_score_shows_a_progress_bar_on_stderr_unless_quiet(
    model: Path, data_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from anoean.cli import main

    src = data_dir / "test.parquet"
    res = CliRunner().invoke(
        main, ["score", str(model), str(src), "--out", str(tmp_path / "a.parquet")]
    )
    assert res.exit_code == 0, res.output
    assert "scoring test.parquet" in res.stderr and "rows" in res.stderr
    assert "scoring test.parquet" not in res.stdout  # the summary alone on stdout
    for args in (["--quiet", "score"], ["score", "--quiet"]):
        out = tmp_path / f"q{len(args[0])}.parquet"
        res = CliRunner().invoke(main, [*args, str(model), str(src), "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "scoring" not in res.stderr


def test_fit_shows_reading_and_preprocessing_bars_on_stderr_unless_quiet(
    data_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from anoean.cli import main

    fit = ["fit", str(data_dir / "train.csv"), "--label-column", "is_attack", "--exclude", "id"]
    fit += ["--method", "ocsvm"]
    res = CliRunner().invoke(main, [*fit, "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "reading train.csv" in res.stderr and "preprocessing" in res.stderr
    assert "reading train.csv" not in res.stdout  # the summary alone on stdout
    for args in (["--quiet", *fit], [*fit, "--quiet"]):
        out = tmp_path / ("before" if args[0] == "--quiet" else "after")
        res = CliRunner().invoke(main, [*args, "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "reading train" not in res.stderr and "preprocessing" not in res.stderr
    ev = ["evaluate", str(tmp_path / "m"), str(data_dir / "test.parquet")]
    res = CliRunner().invoke(main, ev)
    assert res.exit_code == 0 and "reading test.parquet" in res.stderr, res.output
    res = CliRunner().invoke(main, [*ev, "--quiet"])
    assert res.exit_code == 0 and "reading" not in res.stderr, res.output


def test_score_batch_rows_default_is_the_library_default() -> None:
    from anoean.cli.scoring import score
    from anoean.data.tables import DEFAULT_BATCH_ROWS

    (opt,) = [p for p in score.params if p.name == "batch_rows"]
    assert opt.default == DEFAULT_BATCH_ROWS
