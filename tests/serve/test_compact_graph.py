"""The ONNX engine's compact path (anoean.serve.onnx.compact_graph): categories read as one
lookup per row instead of one-hot features; the same scores as the dense graph to float32
round-off, and the dense path wherever the compact one does not apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from anoean.serve import onnx as graphs  # noqa: E402
from anoean.serve.batch import score_batch  # noqa: E402
from anoean.serve.fit import fit_pipeline  # noqa: E402
from anoean.serve.pipeline import load_pipeline, save_pipeline  # noqa: E402


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    proto = rng.choice(["tcp", "udp", "icmp"], n, p=[0.6, 0.3, 0.1])
    svc = rng.choice([f"s{i}" for i in range(7)], n)
    y = (rng.random(n) < 0.08).astype(np.int64)
    a = rng.normal(size=n) + 3.0 * y
    return pa.table(
        {
            "dur": rng.exponential(2.0, n),
            "a": a,
            "b": rng.integers(0, 100, n),
            "proto": proto,
            "svc": svc,
            "flag": rng.choice(["SF", "S0"], n),
            "y": y,
        }
    )


@pytest.fixture(scope="module", params=["anoean", "anoeanplus"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rep = fit_pipeline(
        _table(1500, 0),
        label_column="y",
        method=request.param,
        params={"max_epochs": 2, "device": "cpu"},
    )
    return save_pipeline(rep.pipeline, tmp_path_factory.mktemp("m") / request.param)


def test_encode_compact_is_the_one_hot_encoding(model: Path) -> None:
    pre = load_pipeline(model, engine="numpy").preprocessor
    t = _table(300, 1).select(pre.input_columns_)
    X, unknown = pre.encode_scorable(t)
    xnum, pos, unknown2 = pre.encode_compact(t)
    k = len(pre.numeric_columns_)
    rebuilt = np.zeros_like(X)
    rebuilt[:, :k] = xnum
    rows = np.repeat(np.arange(len(X)), pos.shape[1])
    flat = pos.reshape(-1)
    rebuilt[rows[flat >= 0], k + flat[flat >= 0]] = 1.0
    np.testing.assert_array_equal(rebuilt, X)
    assert unknown == unknown2 == {}


def test_combination_index_is_one_to_one() -> None:
    sizes = [3, 4, 2]
    n = graphs.combinations(sizes)
    assert n == 4 * 5 * 3
    onehot = graphs._combination_onehots(sizes)
    # every combination's positions give back its own index
    pos = np.full((n, 3), -1, dtype=np.int64)
    offsets = [0, 3, 7]
    for j, (lo, size) in enumerate(zip(offsets, sizes, strict=True)):
        block = onehot[:, lo : lo + size]
        on = block.any(axis=1)
        pos[on, j] = lo + block[on].argmax(axis=1)
    np.testing.assert_array_equal(graphs.combination_index(pos, sizes), np.arange(n))


def test_compact_scores_match_the_dense_graph(model: Path) -> None:
    pipe = load_pipeline(model, engine="onnx")
    assert pipe.scorer.compact is not None
    pre = pipe.preprocessor
    t = _table(2000, 2)
    # unknown categories: an all-zero block, in both paths
    svc = t.column("svc").to_numpy(zero_copy_only=False).copy()
    svc[::50] = "never-seen"
    t = t.set_column(t.schema.get_field_index("svc"), "svc", pa.array(svc))
    sub = t.select(pre.input_columns_)
    X, unknown = pre.encode_scorable(sub)
    assert unknown == {"svc": 40}
    dense = pipe.scorer(X)
    xnum, pos, _ = pre.encode_compact(sub)
    compact = pipe.scorer.compact(xnum, pos)
    np.testing.assert_allclose(compact, dense, rtol=1e-5, atol=1e-5)
    torch_scores = load_pipeline(model, engine="torch").scorer(X)
    np.testing.assert_allclose(compact, torch_scores, rtol=1e-5, atol=1e-5)
    # what scoring a batch writes comes from the compact path, same scores
    out = score_batch(pipe, t.to_batches()[0])
    np.testing.assert_allclose(out.column("anomaly_score").to_numpy(), compact[: out.num_rows])


def test_too_many_combinations_fall_back_to_the_dense_graph(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graphs, "MAX_COMBINATIONS", 10)
    pipe = load_pipeline(model, engine="onnx")
    assert pipe.scorer.compact is None
    t = _table(500, 3)
    out = score_batch(pipe, t.to_batches()[0])
    X, _ = pipe.preprocessor.encode_scorable(t.select(pipe.preprocessor.input_columns_))
    np.testing.assert_array_equal(out.column("anomaly_score").to_numpy(), pipe.scorer(X))


def test_a_graph_reading_x_otherwise_is_not_rewritten(model: Path) -> None:
    from onnx import helper

    pipe = load_pipeline(model, engine="numpy")
    dense = graphs.table_graph(pipe.scorer.explainer)
    pre = pipe.preprocessor
    sizes = [len(pre.categories_[c]) for c in pre.categorical_columns_]
    k = len(pre.numeric_columns_)
    assert graphs.compact_graph(dense, k, sizes) is not None
    assert graphs.compact_graph(dense, k, [*sizes[:-1], sizes[-1] + 1]) is None  # layout
    # x read by something other than Sub/Div chains into Gemm: refused
    dense.graph.node.append(helper.make_node("Relu", ["x"], ["unused"]))
    assert graphs.compact_graph(dense, k, sizes) is None
