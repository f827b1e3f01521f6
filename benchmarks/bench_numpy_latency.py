"""Single-row latency of the numpy-only scorer; write its section of docs/benchmarks/score.md.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_numpy_latency.py --data-home ../shared/datasets

The benchmark model (see ``_score_common.py``) scores 10,000 real KDDTrain+ rows, already
preprocessed, one at a time: each call is timed with ``perf_counter_ns`` after a warm-up.
``NumpyScorer.score_one`` (the single-event path) is the measured figure; ``score`` on a
(1, p) batch, ONNX Runtime on one row and the torch detector on one row are timed the same
way for comparison. The target is a median under 50 microseconds per row.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _score_common import (  # noqa: E402
    ROOT,
    fit_model,
    machine_line,
    nsl_kdd_table,
    update_section,
)


def per_call_us(fn, rows: np.ndarray, warmup: int = 500) -> np.ndarray:  # type: ignore[no-untyped-def]
    for x in rows[:warmup]:
        fn(x)
    out = np.empty(len(rows))
    gc.disable()  # a collection in the middle of a call is not the scorer's latency
    try:
        for i, x in enumerate(rows):
            t = time.perf_counter_ns()
            fn(x)
            out[i] = time.perf_counter_ns() - t
    finally:
        gc.enable()
    return out / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=os.environ.get("ANOEAN_DATA", str(ROOT.parent / "shared/datasets"))
    )
    parser.add_argument("--model", help="an existing model directory (default: fit one)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from anoean.export import NumpyScorer
    from anoean.serve.pipeline import load_pipeline

    table = nsl_kdd_table(args.data_home)
    tmp = None
    model = args.model
    if model is None:
        tmp = tempfile.TemporaryDirectory(prefix="anoean-lat-")
        model = str(Path(tmp.name) / "model")
        fit_model(table, Path(model))
    pipe = load_pipeline(model, engine="torch")
    rng = np.random.default_rng(2)
    sample = table.take(rng.choice(table.num_rows, args.rows, replace=False))
    X = pipe.features(sample)
    sc = NumpyScorer.load(model)

    results: dict[str, np.ndarray] = {}
    load0 = os.getloadavg()[0]
    results["NumpyScorer.score_one(x)"] = per_call_us(sc.score_one, X)
    results["NumpyScorer.score(x[None])"] = per_call_us(lambda x: sc.score(x[None]), X)
    try:
        import onnxruntime  # noqa: F401

        ort_pipe = load_pipeline(model, engine="onnx")
        results["ONNX Runtime, 1 row"] = per_call_us(lambda x: ort_pipe.score(x[None]), X)
    except ImportError:
        pass
    det = pipe.detector
    results["torch detector.anomaly_score, 1 row"] = per_call_us(
        lambda x: det.anomaly_score(x[None]), X[: min(len(X), 3000)], warmup=100
    )
    load1 = os.getloadavg()[0]

    # the fast path computes the same scores
    fast = np.array([sc.score_one(x) for x in X[:1000]])
    ref = det.anomaly_score(X[:1000])
    rel = float(np.max(np.abs(fast - ref) / np.maximum(np.abs(ref), 1e-12)))
    med = float(np.median(results["NumpyScorer.score_one(x)"]))
    widths = "-".join(str(w.shape[1]) for w in sc._wt)
    lines = [
        "## Numpy scorer: single-row latency",
        "",
        f"Model: the benchmark AnoEAN, MLP {sc.n_features_in_}-{widths} then the Mahalanobis "
        f"distance; {len(X):,} real KDDTrain+ rows, preprocessed beforehand, scored one call "
        "per row (`perf_counter_ns` around each call, after a warm-up, garbage collector "
        "paused). No torch is needed by the numpy scorer.",
        "",
        "| scorer | median (us) | p90 (us) | p99 (us) | calls |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {np.median(t):.1f} | {np.percentile(t, 90):.1f} | "
            f"{np.percentile(t, 99):.1f} | {len(t):,} |"
            for name, t in results.items()
        ),
        "",
        f"Target: median under 50 us per row: **{'met' if med < 50 else 'NOT met'}** "
        f"({med:.1f} us for `score_one`).",
        "",
        f"Largest relative difference between `score_one` and the torch detector on 1,000 rows: "
        f"{rel:.1e} (float32 round-off, amplified by the whitening matrix of this model's "
        "latent covariance, whose smallest eigenvalues are tiny; see docs/cli.md).",
        "",
        f"Load average (1 min) before / after: {load0:.1f} / {load1:.1f} (2 cores shared "
        "with other jobs).",
        "",
        f"Machine: {machine_line()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("bench_numpy_latency", text)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
