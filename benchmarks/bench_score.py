"""Time ``anoean score`` on 5,000,000 NSL-KDD-shaped rows; write docs/benchmarks/score.md.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_score.py --data-home ../shared/datasets

What it does:

1. fits the benchmark model (the default method, AnoEANPlus) on a 20,000-row sample of KDDTrain+;
2. writes a Parquet file of ``--rows`` rows drawn with replacement from the 125,973 real
   KDDTrain+ rows (41 raw features, 3 of them categorical; no label column), in row groups
   of 500,000 rows;
3. runs ``python -m anoean score model in.parquet --out out.parquet`` ``--repeats`` times,
   each in a fresh process, and records its wall time (interpreter start, imports, model
   load, reading, preprocessing, scoring, writing: end to end), its CPU time and its peak
   resident memory (``wait4`` rusage of the child);
4. checks the output: every row, every input column, two new columns, no null score.

Targets: at least 1,000,000 rows/s end to end on 2 cores (issue 18; 500,000 before), peak
RSS under 1 GB. The machine's load average is recorded: on a shared machine the wall time
includes waiting for CPUs, so CPU time is reported too.

The set-up (fitting, generating the file) and the output check run in child processes, so
this parent stays small: a forked child's peak RSS would otherwise count the parent's pages.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: rows/s end to end that the benchmark is held to (issue 18)
TARGET_ROWS_S = 1_000_000
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)])}


def setup(work: Path, rows: int, data_home: str) -> None:
    """Fit the model and write the input file (run in a child process)."""
    import json

    from _score_common import fit_model, nsl_kdd_table

    table = nsl_kdd_table(data_home)
    t = time.perf_counter()
    shutil.rmtree(work / "model", ignore_errors=True)  # this script's own, from a run before
    val = fit_model(table, work / "model")
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    make_input(table, work / "in.parquet", rows)
    info = {"val": val, "fit_s": fit_s, "gen_s": time.perf_counter() - t}
    (work / "setup.json").write_text(json.dumps(info))


def make_input(table, path: Path, rows: int, seed: int = 1) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow.parquet as pq

    feats = table.drop_columns(["label"])
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, feats.schema) as w:
        for start in range(0, rows, 500_000):
            w.write_table(feats.take(rng.integers(0, feats.num_rows, min(500_000, rows - start))))


def run_once(model: Path, src: Path, out: Path, engine: str, cache: Path) -> dict:
    env = {**ENV, "ANOEAN_GRAPH_CACHE": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "anoean",
        "score",
        str(model),
        str(src),
        "--out",
        str(out),
        "--engine",
        engine,
    ]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"anoean score failed ({proc.returncode}): {stderr}")
    m = re.search(r"scored (\d+) rows in ([\d.]+) s", stdout)
    return {
        "wall": wall,
        "inner": float(m.group(2)) if m else float("nan"),
        "cpu": ru.ru_utime + ru.ru_stime,
        "rss_mb": ru.ru_maxrss / 1024,  # Linux: kilobytes
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def check_output(src: Path, out: Path) -> None:
    """Every row, the input columns plus two, no null score (run in a child process)."""
    import pyarrow.parquet as pq

    a, b = pq.ParquetFile(src), pq.ParquetFile(out)
    assert b.metadata.num_rows == a.metadata.num_rows, (b.metadata.num_rows, a.metadata.num_rows)
    assert b.schema_arrow.names == [*a.schema_arrow.names, "anomaly_score", "is_anomaly"]
    scores = pq.read_table(out, columns=["anomaly_score"]).column(0)
    assert scores.null_count == 0


def _machine_line() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from _score_common import machine_line; print(machine_line())"],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=os.environ.get("ANOEAN_DATA", str(ROOT.parent / "shared/datasets"))
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    parser.add_argument("--step", choices=["setup", "check"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "setup":
        return setup(Path(args.workdir), args.rows, args.data_home)
    if args.step == "check":
        return check_output(Path(args.workdir) / "in.parquet", Path(args.workdir) / "out.parquet")

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="anoean-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        import json

        me = [
            sys.executable,
            __file__,
            "--workdir",
            str(work),
            "--rows",
            str(args.rows),
            "--data-home",
            args.data_home,
        ]
        subprocess.run([*me, "--step", "setup"], env=ENV, check=True)
        info = json.loads((work / "setup.json").read_text())
        val, fit_s, gen_s = info["val"], info["fit_s"], info["gen_s"]
        model, src, out = work / "model", work / "in.parquet", work / "out.parquet"
        # the ONNX graph cache of these runs: empty before the first run, which builds the
        # graph (importing onnx) and is reported on its own; the timed runs find it cached,
        # as every run after a model's first does
        cache = work / "graph-cache"
        shutil.rmtree(cache, ignore_errors=True)
        runs = []
        for i in range(args.repeats + 1):
            out.unlink(missing_ok=True)  # anoean score refuses to replace a file
            r = run_once(model, src, out, args.engine, cache)
            subprocess.run([*me, "--step", "check"], env=ENV, check=True)
            runs.append(r)
            print(f"run {i}{' (cold cache)' if i == 0 else ''}: {r}", flush=True)
        cold, runs = runs[0], runs[1:]
        pipeline_meta = json.loads((model / "pipeline.json").read_text())
        detector = pipeline_meta["detector_class"]
        size_mb = src.stat().st_size / 2**20
        out_mb = out.stat().st_size / 2**20
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    n = args.rows
    wall = statistics.median(r["wall"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    best = min(r["wall"] for r in runs)
    rate, best_rate = n / wall, n / best
    loads = [r["load_before"] for r in runs] + [r["load_after"] for r in runs]
    met_rate, met_rss = rate >= TARGET_ROWS_S, rss < 1024
    lines = [
        "## `anoean score`: 5,000,000 rows end to end",
        "",
        f"Input: {n:,} rows resampled (with replacement, seed 1) from the 125,973 rows of "
        f"NSL-KDD KDDTrain+ (41 raw features: 38 numeric, 3 categorical), Parquet, "
        f"{size_mb:.0f} MiB; output {out_mb:.0f} MiB (every input column plus `anomaly_score`, "
        f"`is_anomaly`). Model: {detector} (the default method; latent 16, MLP 128-64-32) "
        f"on {val['n_features']} preprocessed features, fitted in {fit_s:.0f} s on 20,000 rows "
        "for 3 "
        f"epochs (validation AUC-PR {val.get('aucpr', float('nan')):.3f}; accuracy is not "
        f"the point here). Engine: `{args.engine}`. Input generated in {gen_s:.0f} s (not "
        "timed).",
        "",
        "Each run is `python -m anoean score model in.parquet --out out.parquet` in a fresh "
        "process: wall time includes interpreter start, imports, model load, reading, "
        "preprocessing, scoring and writing. Peak RSS and CPU time come from the child's "
        "rusage. The runs timed find the model's ONNX graphs in the graph cache "
        "(`ANOEAN_GRAPH_CACHE`, as every run after a model's first); the first run, with an "
        f"empty cache, builds them (importing onnx): {cold['wall']:.1f} s wall, "
        f"{cold['cpu']:.1f} s CPU ({n / cold['wall']:,.0f} rows/s), not in the table.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| wall time, median of {len(runs)} | {wall:.1f} s |",
        f"| **rows/s end to end (median)** | **{rate:,.0f}** (best run {best_rate:,.0f}) |",
        f"| CPU time (user + sys), median | {cpu:.1f} s ({n / cpu:,.0f} rows per CPU-second) |",
        f"| **peak RSS** (worst run) | **{rss:.0f} MiB** |",
        f"| time inside the command (reported by it) | "
        f"{statistics.median(r['inner'] for r in runs):.1f} s |",
        f"| load average (1 min) around the runs | {min(loads):.1f} to {max(loads):.1f} |",
        "",
        f"Targets on 2 cores: >= {TARGET_ROWS_S:,} rows/s: **{'met' if met_rate else 'NOT met'}** "
        f"({rate:,.0f} rows/s); peak RSS < 1 GB: **{'met' if met_rss else 'NOT met'}**.",
        "",
        "The 2 cores were shared with other jobs during the runs (the load average above; 2.0 "
        "would mean both cores fully busy): the wall time includes waiting for a CPU. The "
        "CPU time is what the command itself used; divided by the 2 cores it bounds what an "
        f"idle 2-core machine could reach ({n / (cpu / 2):,.0f} rows/s if the stages overlapped "
        "perfectly), an estimate and not a measurement.",
        "",
        "Runs: "
        + "; ".join(
            f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['rss_mb']:.0f} MiB, load "
            f"{r['load_before']:.1f}->{r['load_after']:.1f}"
            for r in runs
        ),
        "",
        f"Machine: {_machine_line()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from _score_common import update_section

        update_section("bench_score", text)


if __name__ == "__main__":
    main()
