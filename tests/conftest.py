"""Shared fixtures: a synthetic semi-supervised problem and a model fitted on it once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]

# Property-based tests: CI runs 200 examples per property, derandomised (a fixed seed), so
# that a run is stable; HYPOTHESIS_PROFILE=deep runs 10,000 (docs/reliability.md).
_COMMON = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    print_blob=True,
)
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("deep", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# the ONNX engine's graph cache (anoean.serve.engine.graph_cache_dir) of this test session
# goes to a temporary folder, not the user's ~/.cache (subprocesses inherit it)
os.environ.setdefault("ANOEAN_GRAPH_CACHE", tempfile.mkdtemp(prefix="anoean-graphs-"))


def make_synthetic(seed: int = 0, d: int = 20, n_per_cluster: int = 800, n_anom: int = 120):
    """Normals: 3 Gaussian clusters in d dims. Labelled anomalies: 2 clusters shifted from
    the first two normal clusters. Unseen anomalies (test only): a third, different cluster.

    Returns (X, y, X_test, y_test, kind_test) with kind_test 0 = normal, 1/2 = seen anomaly
    clusters, 3 = the unseen cluster.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 2.0, size=(3, d))
    anomaly_centers = np.stack(
        [
            centers[0] + rng.normal(0.0, 1.2, size=d),
            centers[1] + rng.normal(0.0, 1.2, size=d),
            rng.normal(0.0, 2.0, size=d),  # unseen kind: a different region altogether
        ]
    )

    def draw(c: np.ndarray, n: int) -> np.ndarray:
        return c + rng.normal(size=(n, d))

    X = np.vstack(
        [draw(c, n_per_cluster) for c in centers]
        + [draw(anomaly_centers[i], n_anom // 2) for i in range(2)]
    )
    y = np.r_[np.zeros(3 * n_per_cluster), np.ones(2 * (n_anom // 2))].astype(int)
    n_t, n_ta = 200, 50
    X_test = np.vstack(
        [draw(c, n_t) for c in centers] + [draw(anomaly_centers[i], n_ta) for i in range(3)]
    )
    kind = np.r_[np.zeros(3 * n_t), np.full(n_ta, 1), np.full(n_ta, 2), np.full(n_ta, 3)].astype(
        int
    )
    return X.astype(np.float32), y, X_test.astype(np.float32), (kind > 0).astype(int), kind


@pytest.fixture(scope="session")
def synthetic():
    return make_synthetic()


@pytest.fixture(scope="session")
def fitted(synthetic):
    from anoean import AnoEAN

    X, y, *_ = synthetic
    return AnoEAN(max_epochs=40, patience=None, random_state=0, device="cpu").fit(X, y)


# --------------------------------------------------------------------------- CLI models
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flow-record tables: train.csv (800 rows), test.parquet and test.csv (300 rows)."""
    from _cli_helpers import flows, write_table

    d = tmp_path_factory.mktemp("flows")
    write_table(flows(800, seed=0), d / "train.csv")
    write_table(flows(300, seed=1), d / "test.parquet")
    write_table(flows(300, seed=1), d / "test.csv")
    return d


@pytest.fixture(scope="module")
def model(data_dir: Path) -> Path:
    """A CLI model directory fitted on ``data_dir / "train.csv"`` (2 epochs)."""
    from _cli_helpers import FAST, run

    out = data_dir / "model"
    res = run(
        "fit", data_dir / "train.csv", "--label-column", "is_attack", "--exclude", "id",
        "--target-false-alarm", "0.05", "--out", out, *FAST,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "AUC-PR" in res.output and f"wrote {out}" in res.output
    return out


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (restored after): small models train faster so on
    the 2 cores, and a test's timing does not depend on what runs beside it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
