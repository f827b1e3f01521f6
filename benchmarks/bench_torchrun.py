"""Time ``anoean fit`` on NSL-KDD with 1 process and with ``torchrun`` (2 processes, gloo).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_torchrun.py --data-home ../shared/datasets

Input: KDDTrain+ (125,973 rows, 41 raw features, 122 after one-hot encoding), labelled
``normal`` or an attack, written once to a Parquet file. Model: AnoEAN with the paper's
defaults (batch 200, lr 1e-3, MLP 128-64-32-16) for a fixed number of epochs
(``--param max_epochs=E --param patience=null``), so every configuration runs the same
epochs.

Configurations, each run ``--repeats`` times in a fresh process:

* ``1 process, 2 threads``: ``anoean fit`` as a user runs it (torch's intra-op threads on
  both cores);
* ``1 process, 1 thread``: ``OMP_NUM_THREADS=1``, the per-rank budget of the next one;
* ``torchrun 2 x 1 thread``: ``torchrun --standalone --nproc_per_node 2 -m anoean fit ...
  --distributed`` with ``OMP_NUM_THREADS=1`` (torchrun's default).

Recorded: wall time of the command, the training time (the sum of the epochs' ``time_s`` in
the saved history: what data parallelism speeds up), the validation AUC-PR, the load
average. Writes the ``bench_torchrun`` section of docs/benchmarks/torchrun.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = ROOT / "docs/benchmarks/torchrun.md"
HEADER = (
    "# Benchmark: training with torchrun\n\n"
    "Produced by `benchmarks/bench_torchrun.py` (do not edit by hand).\n"
)


def make_input(data_home: str, path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from anoean.data.datasets import load_nsl_kdd

    d = load_nsl_kdd(data_home=data_home, subset="train", download=False)
    table = d.features.append_column("label", pa.array(d.attack))
    pq.write_table(table, path)
    return table.num_rows


def run(config: str, data: Path, out: Path, epochs: int, seed: int) -> dict:
    fit = [
        "-m",
        "anoean",
        "fit",
        str(data),
        "--label-column",
        "label",
        "--normal-value",
        "normal",
        "--out",
        str(out),
        "--method",
        "anoean",
        "--seed",
        str(seed),
        "--param",
        f"max_epochs={epochs}",
        "--param",
        "patience=null",
        "--param",
        'device="cpu"',
        "--quiet",
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    if config == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += ["--nproc_per_node", "2", *fit, "--distributed"]
        env["OMP_NUM_THREADS"] = "1"
    else:
        cmd = [sys.executable, *fit]
        if config == "1x1":
            env["OMP_NUM_THREADS"] = "1"
        else:
            env.pop("OMP_NUM_THREADS", None)
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed:\n{proc.stderr[-3000:]}")
    rep = json.loads(proc.stdout[proc.stdout.index("{") :])
    state = json.loads((out / "config.json").read_text())["state"]
    train_s = sum(h["time_s"] for h in state["history_"])
    return {
        "config": config,
        "wall_s": wall,
        "train_s": train_s,
        "epochs": rep["epochs"],
        "aucpr": rep["validation"]["aucpr"],
        "load": (load0, os.getloadavg()[0]),
    }


NAMES = {
    "1x2": "1 process, 2 threads",
    "1x1": "1 process, 1 thread",
    "torchrun": "torchrun, 2 processes x 1 thread (gloo)",
}


def report(rows: list[dict], n_rows: int, epochs: int) -> str:
    import numpy
    import torch

    lines = [
        "## `anoean fit` on KDDTrain+: one process against torchrun",
        "",
        f"Input: KDDTrain+, {n_rows:,} rows (122 features after one-hot encoding), Parquet; "
        f"AnoEAN with the paper's defaults for {epochs} epochs (no early stopping), seed 0; "
        "the same hold-out split (20%) in every run. Each run is a fresh process.",
        "",
        "| configuration | wall time (median) | training time (median) | per epoch | "
        "val AUC-PR | runs |",
        "|---|---|---|---|---|---|",
    ]
    base = None
    for key, name in NAMES.items():
        mine = [r for r in rows if r["config"] == key]
        if not mine:
            continue
        wall = statistics.median(r["wall_s"] for r in mine)
        train = statistics.median(r["train_s"] for r in mine)
        auc = ", ".join(f"{r['aucpr']:.4f}" for r in mine)
        lines.append(
            f"| {name} | {wall:.1f} s | {train:.1f} s | {train / epochs:.2f} s | {auc} | "
            f"{len(mine)} |"
        )
        if key == "1x2":
            base = train
    tr = [r for r in rows if r["config"] == "torchrun"]
    if base and tr:
        speed = base / statistics.median(r["train_s"] for r in tr)
        lines += [
            "",
            f"Training-time speed-up of torchrun over 1 process with 2 threads: **{speed:.2f}x**.",
        ]
    loads = ", ".join(f"{r['load'][0]:.1f}->{r['load'][1]:.1f}" for r in rows)
    lines += [
        "",
        f"Load average (1 min) before -> after each run: {loads} (2 cores; other jobs "
        "shared them when it is above 2).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s) visible; Python "
        f"{platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
    ]
    return "\n".join(lines)


def update_section(text: str, name: str = "bench_torchrun") -> None:
    """Replace (or append) section ``name`` of docs/benchmarks/torchrun.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else HEADER
    if start in old:
        pre, rest = old.split(start, 1)
        new = pre + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip() + "\n\n" + block
    RESULTS.write_text(new, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-home", default=os.environ.get("ANOEAN_DATA", "../shared/datasets"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp one)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="anoean-torchrun-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "kddtrain.parquet"
    n_rows = make_input(args.data_home, data)
    rows = []
    for rep in range(args.repeats):
        for config in NAMES:
            out = work / f"model-{config}-{rep}"
            subprocess.run(["rm", "-rf", str(out), f"{out}.checkpoints"], check=True)
            r = run(config, data, out, args.epochs, 0)
            print(json.dumps(r), flush=True)
            rows.append(r)
    update_section(report(rows, n_rows, args.epochs))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
