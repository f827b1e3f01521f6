"""Shared helpers for the CLI, export and report tests: tiny models and flow-like tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: float32 round-off tolerance between torch, ONNX Runtime and numpy scores
RTOL = 1e-5
#: absolute slack for scores near zero, where a relative tolerance means nothing: the
#: scores are distances in whitened units (typically 1-10), and float32 round-off through
#: the encoder leaves about 1e-6 absolute error on each (measured: max 2e-6)
ATOL = 1e-5


def blobs(n_normal: int = 400, n_anomaly: int = 40, p: int = 6, seed: int = 0):
    """Normals ~ N(0, I), anomalies ~ N(3, I), float32, with 0/1 labels."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n_normal, p)), rng.normal(3, 1, size=(n_anomaly, p))])
    y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int64)
    return X.astype(np.float32), y


def small_anoean(X: np.ndarray, y: np.ndarray, **kw: Any):
    from anoean import AnoEAN

    params = dict(latent_dim=4, max_epochs=3, random_state=0, device="cpu")
    params.update(kw)
    return AnoEAN(**params).fit(X, y)


def flows(n: int = 600, *, anomaly_rate: float = 0.08, seed: int = 0) -> dict[str, Any]:
    """A flow-record-like table: numeric sizes/durations, categorical proto/service, a label.

    Anomalies have larger byte counts and a distinct service mix, so a few epochs separate them.
    """
    rng = np.random.default_rng(seed)
    is_attack = rng.random(n) < anomaly_rate
    src_bytes = np.where(is_attack, rng.normal(8, 1, n), rng.normal(4, 1, n))
    dst_bytes = np.where(is_attack, rng.normal(1, 1, n), rng.normal(5, 1, n))
    duration = np.abs(rng.normal(1, 0.5, n))
    proto = rng.choice(["tcp", "udp", "icmp"], n, p=[0.6, 0.3, 0.1])
    service = np.where(
        is_attack, rng.choice(["private", "telnet"], n), rng.choice(["http", "smtp", "dns"], n)
    )
    return {
        "id": np.arange(n),
        "duration": duration.round(3),
        "src_bytes": src_bytes.round(3),
        "dst_bytes": dst_bytes.round(3),
        "proto": proto,
        "service": service,
        "is_attack": is_attack.astype(np.int64),
    }


def write_table(data: dict[str, Any], path: Path) -> Path:
    """Write a dict of columns as CSV or Parquet, by the file's suffix."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(np.asarray(v).tolist()) for k, v in data.items()})
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


#: detector options that keep a CLI fit to seconds
FAST = ["--param", "max_epochs=2", "--param", "device=cpu", "--quiet"]


def run(*args: str | Path) -> Any:
    """Invoke the CLI in-process; exceptions propagate (a traceback fails the test)."""
    from click.testing import CliRunner

    from anoean.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def fails(result: Any, *fragments: str) -> None:
    """Exit status 1 with a one-line 'Error: ...' naming every fragment."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in result.output, (f, result.output)
