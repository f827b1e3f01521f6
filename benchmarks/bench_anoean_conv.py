"""Speed of AnoEAN's conv (image) training on CPU, optionally against another source tree.

Fits AnoEAN(encoder="conv") on a synthetic MNIST-shaped problem (5,000 normal + 500
anomalous 1x28x28 float32 images, a 500-image validation set: the sizes of a ``mnist-1vall``
split) for ``--epochs`` epochs without early stopping, and reports seconds per epoch (the
median over epochs after the first, which pays one-off oneDNN set-up) and the fit's total.
Speed does not depend on the pixel values.

The machine this was written on is shared, so timings drift with other jobs' load. To compare
two versions fairly, pass ``--compare OTHER_SRC`` (the ``src`` directory of another checkout,
e.g. ``git archive main src | tar -x -C /tmp/base``): each round then fits both versions, one
after the other, in fresh subprocesses, and the report gives the per-round ratio as well.

Run: ``python benchmarks/bench_anoean_conv.py [--epochs 4] [--rounds 3] [--compare DIR]
[--out docs/benchmarks/anoean_conv.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE_SRC = str(Path(__file__).resolve().parents[1] / "src")


def child(epochs: int, threads: int | None) -> None:
    """Fit once and print a JSON line of timings (runs inside a subprocess)."""
    import numpy as np
    import torch

    from anoean import AnoEAN

    if threads:
        torch.set_num_threads(threads)

    rng = np.random.default_rng(0)
    X = rng.random((5500, 1, 28, 28), dtype=np.float32)
    y = np.r_[np.zeros(5000), np.ones(500)].astype(np.int64)
    X_val = rng.random((500, 1, 28, 28), dtype=np.float32)
    y_val = np.r_[np.zeros(400), np.ones(100)].astype(np.int64)
    m = AnoEAN(encoder="conv", max_epochs=epochs, patience=None, random_state=0, device="cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    m.fit(X, y, X_val=X_val, y_val=y_val)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    epoch_s = [r["time_s"] for r in m.history_]
    print(
        json.dumps(
            {
                "total_s": total,
                # CPU seconds per epoch: less sensitive than wall time to other jobs on a shared
                # machine (they steal wall time, not this process's CPU time)
                "cpu_per_epoch_s": cpu / epochs,
                "epoch_s": epoch_s,
                "epoch_median_s": statistics.median(epoch_s[1:] or epoch_s),
                "threads": torch.get_num_threads(),
            }
        )
    )


def run_child(src: str, epochs: int, threads: int | None) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--epochs",
            str(epochs),
            *(["--threads", str(threads)] if threads else []),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", default=HERE_SRC, help="src directory of 'this' version")
    ap.add_argument("--compare", default=None, help="src directory of the version to compare")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.epochs, args.threads)
        return
    import torch

    rows = []
    for r in range(args.rounds):
        this = run_child(args.src, args.epochs, args.threads)
        other = run_child(args.compare, args.epochs, args.threads) if args.compare else None
        rows.append((this, other))
        print(
            f"round {r + 1}: this {this['epoch_median_s']:.2f} s/epoch"
            + (f", other {other['epoch_median_s']:.2f} s/epoch" if other else ""),
            flush=True,
        )
    load = os.getloadavg()[0]
    cmd = f"python benchmarks/bench_anoean_conv.py --epochs {args.epochs} --rounds {args.rounds}"
    if args.threads:
        cmd += f" --threads {args.threads}"
    if args.compare:
        cmd += " --compare <src of the other version>"
    lines = [
        "# AnoEAN conv training speed on CPU",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
        f"(shared; 1-minute load average {load:.1f} at the end), torch {torch.__version__} with "
        f"{rows[0][0]['threads']} threads. Command: `{cmd}`.",
        "",
        "Synthetic MNIST-sized problem: 5,000 normal + 500 anomalous 1x28x28 training images, "
        "500 validation images, batch 200, no early stopping. Seconds per epoch is the median "
        "over epochs 2.. (epoch 1 pays one-off set-up) and includes the validation pass.",
        "",
    ]
    if args.compare:
        lines += [
            "| round | this: wall s/epoch | other: wall s/epoch | wall ratio "
            "| this: CPU s/epoch | other: CPU s/epoch | CPU ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, (a, b) in enumerate(rows, 1):
            w, c = a["epoch_median_s"], a["cpu_per_epoch_s"]
            wo, co = b["epoch_median_s"], b["cpu_per_epoch_s"]
            lines.append(
                f"| {i} | {w:.2f} | {wo:.2f} | {w / wo:.2f} | {c:.2f} | {co:.2f} | {c / co:.2f} |"
            )
        wr = statistics.median(a["epoch_median_s"] / b["epoch_median_s"] for a, b in rows)
        cr = statistics.median(a["cpu_per_epoch_s"] / b["cpu_per_epoch_s"] for a, b in rows)
        lines += ["", f"Median ratio this / other: wall **{wr:.2f}**, CPU **{cr:.2f}**.", ""]
    else:
        lines += ["| round | wall s/epoch | CPU s/epoch | fit total (s) |", "|---|---|---|---|"]
        for i, (a, _) in enumerate(rows, 1):
            w, c = a["epoch_median_s"], a["cpu_per_epoch_s"]
            lines.append(f"| {i} | {w:.2f} | {c:.2f} | {a['total_s']:.1f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
