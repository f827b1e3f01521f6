"""NumpyScorer and ONNX export reproduce AnoEAN.anomaly_score (torch) to float32 round-off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli_helpers import ATOL, RTOL, blobs, small_anoean

from anoean import ModelFileError
from anoean.export import NumpyScorer, export_onnx

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mlp_model(tmp_path_factory: pytest.TempPathFactory):
    X, y = blobs(p=20, seed=1)
    det = small_anoean(X, y, latent_dim=8)
    path = det.save(tmp_path_factory.mktemp("mlp") / "model")
    return det, path, X


def _ort_scores(onnx_path: Path, X: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X.astype(np.float32)})[0]


def test_numpy_and_onnx_match_torch(mlp_model, tmp_path: Path) -> None:
    det, path, X = mlp_model
    rng = np.random.default_rng(5)
    # training rows plus rows far outside the training range
    Xq = np.vstack([X, rng.normal(0, 10, size=(200, X.shape[1])).astype(np.float32)])
    torch_s = det.anomaly_score(Xq)
    np_s = NumpyScorer.load(path).score(Xq)
    onnx_s = _ort_scores(export_onnx(path, tmp_path / "m.onnx"), Xq)
    assert np_s.dtype == np.float64 and onnx_s.dtype == np.float64  # float64 distance
    assert onnx_s.shape == torch_s.shape
    np.testing.assert_allclose(np_s, torch_s, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(onnx_s, torch_s, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np_s, onnx_s, rtol=RTOL, atol=ATOL)
    # the test is not vacuous: the scores spread over orders of magnitude
    assert torch_s.max() > 10 * np.median(torch_s)


def test_single_rows_and_batches_agree(mlp_model, tmp_path: Path) -> None:
    det, path, X = mlp_model
    sc = NumpyScorer.load(path)
    batch = sc.score(X[:5])
    ones = np.array([sc.score(x)[0] for x in X[:5]])
    np.testing.assert_allclose(ones, batch, rtol=1e-6)
    fast = np.array([sc.score_one(x) for x in X[:5]])
    np.testing.assert_allclose(fast, batch, rtol=1e-6)
    assert isinstance(sc.score_one(X[0]), float)
    onnx_path = export_onnx(path, tmp_path / "m.onnx")
    np.testing.assert_allclose(_ort_scores(onnx_path, X[:1]), batch[:1], rtol=RTOL, atol=ATOL)


def test_threshold_and_predict_follow_the_model(mlp_model, tmp_path: Path) -> None:
    import onnx

    det, path, X = mlp_model
    sc = NumpyScorer.load(path)
    assert sc.threshold == pytest.approx(det.threshold_)
    np.testing.assert_array_equal(sc.predict(X), det.predict(X) == -1)
    meta = {
        p.key: p.value
        for p in onnx.load(str(export_onnx(path, tmp_path / "m.onnx"))).metadata_props
    }
    assert float(meta["threshold"]) == pytest.approx(det.threshold_)


def test_onnx_graph_uses_the_pinned_opset(mlp_model, tmp_path: Path) -> None:
    import onnx

    _, path, _ = mlp_model
    model = onnx.load(str(export_onnx(path, tmp_path / "m.onnx")))
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]
    ops = {n.op_type for n in model.graph.node}
    assert {"Gemm", "LeakyRelu", "MatMul", "Sqrt"} <= ops


def test_numpy_scorer_rejects_bad_rows(mlp_model) -> None:
    _, path, X = mlp_model
    sc = NumpyScorer.load(path)
    bad = X[:3].copy()
    bad[2, 4] = np.nan
    with pytest.raises(ValueError, match="row 2, column 4"):
        sc.score(bad)
    with pytest.raises(ValueError, match="20 features"):
        sc.score(X[:, :5])
    row = X[0].copy()
    row[7] = np.inf
    with pytest.raises(ValueError, match="column 7"):
        sc.score_one(row)
    with pytest.raises(ValueError, match="one row of 20 features"):
        sc.score_one(X[:2])


def test_numpy_scorer_imports_neither_torch_nor_sklearn(mlp_model) -> None:
    _, path, X = mlp_model
    code = (
        "import sys, numpy as np\n"
        "from anoean.export import NumpyScorer\n"
        f"s = NumpyScorer.load({str(path)!r})\n"
        f"print(float(s.score(np.zeros((1, {X.shape[1]}), np.float32))[0]))\n"
        "heavy = [m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) > 0


@pytest.mark.parametrize("damage", ["weights", "config_class", "missing"])
def test_damaged_model_is_refused(mlp_model, tmp_path: Path, damage: str) -> None:
    import shutil

    _, path, _ = mlp_model
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    if damage == "weights":
        data = bytearray((bad / "weights.safetensors").read_bytes())
        data[-3] ^= 0x01  # flip one bit of a weight
        (bad / "weights.safetensors").write_bytes(bytes(data))
        match = "SHA-256"
    elif damage == "config_class":
        cfg = json.loads((bad / "config.json").read_text())
        cfg["class"] = "OtherDetector"
        cfg.pop("content_sha256")  # as a 0.1.0 file, which records no digest of itself
        (bad / "config.json").write_text(json.dumps(cfg))
        match = "OtherDetector"
    else:
        (bad / "weights.safetensors").unlink()
        match = "weights.safetensors is missing"
    with pytest.raises(ModelFileError, match=match):
        NumpyScorer.load(bad)
    with pytest.raises(ModelFileError, match=match):
        export_onnx(bad, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_conv_encoder_exports_to_onnx(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Xn = rng.random((120, 1, 8, 8), dtype=np.float32) * 0.3
    Xa = rng.random((12, 1, 8, 8), dtype=np.float32) * 0.3 + 0.6
    X = np.concatenate([Xn, Xa])
    y = np.r_[np.zeros(120), np.ones(12)]
    det = small_anoean(X, y, encoder="conv", max_epochs=2)
    path = det.save(tmp_path / "conv")
    onnx_s = _ort_scores(export_onnx(path, tmp_path / "conv.onnx"), X)
    np.testing.assert_allclose(onnx_s, det.anomaly_score(X), rtol=RTOL, atol=ATOL)
    with pytest.raises(ModelFileError, match="MLP encoder only"):
        NumpyScorer.load(path)
