"""Speed of AnoEAN's fit and scoring on CPU (issue targets in parentheses).

* fit on a 5,500 x 122 float32 table (NSL-KDD sized): seconds per epoch (< 0.15 s) and total;
* anomaly_score throughput on 1,000,000 x 122 float32 rows (>= 1,000,000 rows/s) and the
  peak resident memory of the scoring process (< 1.5 GB).

Run: ``python benchmarks/bench_anoean.py [--out docs/benchmarks/anoean.md]``. The data is
synthetic with NSL-KDD's shape (122 one-hot/min-max features); speed does not depend on the
values. Scoring runs in a fresh subprocess so that its peak RSS is measured alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def make_table(n: int, p: int = 122, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, p), dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    y[: n // 11] = 1  # 5,000 normal + 500 anomalies for n = 5,500
    X[y == 1] += 0.5
    return X, y


def bench_fit(epochs: int) -> dict:
    from anoean import AnoEAN

    X, y = make_table(5500)
    t0 = time.perf_counter()
    m = AnoEAN(max_epochs=epochs, patience=None, random_state=0, device="cpu").fit(X, y)
    total = time.perf_counter() - t0
    per_epoch = [r["time_s"] for r in m.history_]
    return {
        "rows": 5500,
        "epochs": epochs,
        "fit_total_s": total,
        "epoch_median_s": float(np.median(per_epoch)),
        "epoch_mean_s": float(np.mean(per_epoch)),
        "model": m,
    }


def bench_score_child(model_dir: str, n: int) -> None:
    from anoean import load

    m = load(model_dir, device="cpu")
    X, _ = make_table(n, seed=1)
    m.anomaly_score(X[:10000])  # warm-up
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        m.anomaly_score(X)
        best = min(best, time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": n, "best_s": best, "rows_per_s": n / best, "peak_rss_mb": peak_mb}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--score-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.score_child:
        bench_score_child(args.score_child, args.rows)
        return
    import tempfile

    import torch

    fit = bench_fit(args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        fit.pop("model").save(os.path.join(tmp, "m"))
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--score-child",
                os.path.join(tmp, "m"),
                "--rows",
                str(args.rows),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    score = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [
        "# AnoEAN speed on CPU",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads. Command: "
        f"`python benchmarks/bench_anoean.py --epochs {args.epochs} --rows {args.rows}`.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| fit, 5,500 x 122 float32, seconds per epoch (median of {fit['epochs']}) | "
        f"{fit['epoch_median_s']:.3f} s | < 0.15 s |",
        f"| fit, seconds per epoch (mean, incl. validation) | {fit['epoch_mean_s']:.3f} s | |",
        f"| fit, total for {fit['epochs']} epochs | {fit['fit_total_s']:.2f} s | |",
        f"| anomaly_score, {score['rows']:,} x 122 float32, rows/s (best of 3) | "
        f"{score['rows_per_s']:,.0f} | >= 1,000,000 |",
        f"| anomaly_score, peak RSS of the scoring process (incl. the input) | "
        f"{score['peak_rss_mb']:,.0f} MB | < 1,500 MB |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
