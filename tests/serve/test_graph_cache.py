"""The ONNX engine's graph cache (anoean.serve.engine): a model's graph is built once, stored
with its SHA-256, and later loads run it without importing onnx; a damaged, disabled or
unwritable cache never changes a score."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from anoean.serve.engine import GRAPH_CACHE_ENV, graph_cache_dir, load_scorer  # noqa: E402


def _fit(tmp: Path, seed: int) -> tuple[Path, np.ndarray]:
    from anoean import AnoEAN

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = np.zeros(300, dtype=np.int64)
    X[:15] += 4.0
    y[:15] = 1
    det = AnoEAN(max_epochs=1, device="cpu", random_state=seed).fit(X, y)
    return det.save(tmp / f"m{seed}"), X


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "graphs"
    monkeypatch.setenv(GRAPH_CACHE_ENV, str(folder))
    return folder


def test_second_load_runs_the_cached_graph_without_importing_onnx(
    tmp_path: Path, cache: Path
) -> None:
    path, X = _fit(tmp_path, 0)
    first = load_scorer(path, "onnx")(X)
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1  # built once, stored
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np\n"
        "from anoean.serve.engine import load_scorer\n"
        f"s = load_scorer({str(path)!r}, 'auto')\n"
        f"np.save({str(tmp_path / 'got.npy')!r}, s(np.load({str(tmp_path / 'X.npy')!r})))\n"
        "print(s.engine, 'onnx' in sys.modules)\n"
    )
    env = {**__import__("os").environ, GRAPH_CACHE_ENV: str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["onnx", "False"]  # the ONNX engine, and onnx never imported
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), first)  # bit for bit


def test_a_damaged_cached_graph_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    path, X = _fit(tmp_path, 0)
    first = load_scorer(path, "onnx")(X)
    (f,) = cache.glob("*.onnx")
    good = f.read_bytes()
    for damage in (good[: len(good) // 2], good[:-10] + b"x" * 10, b"not a graph"):
        f.write_bytes(damage)
        np.testing.assert_array_equal(load_scorer(path, "onnx")(X), first)
        assert f.read_bytes() == good  # replaced by the rebuilt graph


def test_each_model_has_its_own_graph(tmp_path: Path, cache: Path) -> None:
    a, X = _fit(tmp_path, 0)
    b, _ = _fit(tmp_path, 1)
    sa, sb = load_scorer(a, "onnx")(X), load_scorer(b, "onnx")(X)
    assert len(list(cache.glob("*.onnx"))) == 2
    assert not np.allclose(sa, sb)
    # the same weights saved again elsewhere share the graph
    from anoean import load

    load(a).save(tmp_path / "copy")
    np.testing.assert_array_equal(load_scorer(tmp_path / "copy", "onnx")(X), sa)
    assert len(list(cache.glob("*.onnx"))) == 2


@pytest.mark.parametrize("setting", ["off", "unwritable"])
def test_no_cache_or_an_unwritable_one_still_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    path, X = _fit(tmp_path, 0)
    expected = load_scorer(path, "numpy")(X)
    if setting == "off":
        monkeypatch.setenv(GRAPH_CACHE_ENV, "off")
        assert graph_cache_dir() is None
    else:
        blocker = tmp_path / "file"
        blocker.write_text("a file where the cache folder would go")
        monkeypatch.setenv(GRAPH_CACHE_ENV, str(blocker / "graphs"))
    np.testing.assert_allclose(load_scorer(path, "onnx")(X), expected, rtol=1e-5)
    assert not list(tmp_path.rglob("*.onnx"))
    assert json.loads((path / "config.json").read_text())  # the model directory untouched


def test_fit_warms_the_cache_so_the_first_score_skips_onnx(tmp_path: Path, cache: Path) -> None:
    """``anoean fit`` builds the graphs after saving: the model's first ``anoean score``, in
    a fresh process, runs the ONNX engine without importing onnx."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from anoean.cli import main

    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.1).astype(np.int64)
    t = pa.table({"a": rng.normal(size=n) + 3 * y, "c": rng.choice(["x", "y"], n), "y": y})
    pq.write_table(t, tmp_path / "t.parquet")
    fit = ["fit", str(tmp_path / "t.parquet"), "--label-column", "y", "--out"]
    fit += [str(tmp_path / "m"), "--param", "max_epochs=1", "--param", "device=cpu", "--quiet"]
    res = CliRunner().invoke(main, fit)
    assert res.exit_code == 0, res.output
    assert len(list(cache.glob("*.onnx"))) == 2  # the dense graph and the compact one
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['anoean', 'score', {str(tmp_path / 'm')!r}, "
        f"{str(tmp_path / 't.parquet')!r}, '--out', {str(tmp_path / 's.parquet')!r}, '--quiet']\n"
        "try:\n    runpy.run_module('anoean', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('onnx' in sys.modules)\n"
    )
    env = {**os.environ, GRAPH_CACHE_ENV: str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split()[-1] == "False", out.stdout + out.stderr
    assert pq.read_table(tmp_path / "s.parquet").num_rows == n
