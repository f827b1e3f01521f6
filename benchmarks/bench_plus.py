"""Scoring throughput of AnoEANPlus against AnoEAN, in the same run (issue: at least half).

Both are fitted on the same synthetic NSL-KDD-shaped table (122 features) with a few
epochs (training length does not change the cost of scoring), then score ``--rows`` rows
``--repeats`` times with the torch engine (``anomaly_score``) and the numpy engine
(:class:`anoean.export.NumpyScorer`); the best time of the repeats is kept.

    python benchmarks/bench_plus.py --rows 1000000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from anoean import AnoEAN, AnoEANPlus
from anoean.export import NumpyScorer


def _best(fn, X, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=122)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    p = args.features
    X = rng.normal(size=(5000, p)).astype(np.float32)
    y = np.zeros(5000)
    X[:100] += 3.0
    y[:100] = 1
    X_score = rng.normal(size=(args.rows, p)).astype(np.float32)
    out = {"rows": args.rows, "features": p, "threads": args.threads, "rows_per_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for cls in (AnoEAN, AnoEANPlus):
            det = cls(max_epochs=2, random_state=0, device="cpu").fit(X, y)
            path = det.save(f"{tmp}/{cls.__name__}")
            sc = NumpyScorer.load(path)
            for engine, fn in (("torch", det.anomaly_score), ("numpy", sc.score)):
                fn(X_score[:10_000])  # warm-up
                s = _best(fn, X_score, args.repeats)
                out["rows_per_s"][f"{cls.__name__}/{engine}"] = args.rows / s
    r = out["rows_per_s"]
    for engine in ("torch", "numpy"):
        out[f"ratio_{engine}"] = r[f"AnoEANPlus/{engine}"] / r[f"AnoEAN/{engine}"]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in r.items():
            print(f"{k:20s} {v:12,.0f} rows/s")
        for engine in ("torch", "numpy"):
            print(f"AnoEANPlus / AnoEAN ({engine}): {out[f'ratio_{engine}']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
