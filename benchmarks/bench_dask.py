"""Time scoring on Dask against single-process scoring, on 20,000,000 NSL-KDD-shaped rows in
20 Parquet files; write docs/benchmarks/dask.md.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_dask.py --workdir /work/bench18/dask

What it does:

1. fits the benchmark model of ``bench_score.py`` (the default method, AnoEANPlus; 20,000
   KDDTrain+ rows, 3 epochs) and writes ``--files`` Parquet files of ``--rows / --files`` rows
   each, drawn with replacement from the 125,973 KDDTrain+ rows (seed = the file's number), in
   row groups of 500,000 rows; both are kept in ``--workdir`` and reused by later runs;
2. runs each configuration ``--repeats`` times, interleaved (so that a change in the
   machine's load touches every configuration alike), each run in a fresh process:

   * ``single``: one Python process scoring the files one after the other with
     :func:`anoean.serve.scoring.score_file` as ``anoean score`` does (reader thread,
     scoring pool, writer thread: all cores), interpreter start and model load included;
   * ``dask-1x1``: ``anoean score model DIR --out OUT --engine dask --workers 1``;
   * ``dask-2x1``: the same with ``--workers 2`` (each worker one process of one thread);

   the Dask runs include starting the LocalCluster and loading the model on each worker;
3. records each run's wall time, CPU time (the child's rusage, its reaped worker processes
   included), the peak resident memory of the whole process tree (sampled every 0.2 s from
   /proc) and of its largest process (rusage), and the load average before, during and
   after;
4. checks each run's output: every file, every row, the input columns plus two, no null
   score; and that the Dask outputs equal the single-process output of the first file.

Targets: 2 workers >= 1.8x the throughput of 1 worker; 2 workers of 1 thread >= 90% of the
single process on 2 cores. Medians of the repeats are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)])}
RESULTS = ROOT / "docs/benchmarks/dask.md"
SCALE = ROOT / "docs/scale.md"
HEADER = (
    "# Benchmark: scoring on Dask\n\n"
    "Produced by `benchmarks/bench_dask.py` (do not edit by hand; it rewrites its section).\n"
)
CONFIGS = ("single", "dask-1x1", "dask-2x1")


# --------------------------------------------------------------------------- set-up
def setup(work: Path, rows: int, files: int, data_home: str) -> None:
    """Fit the model and write the input files, unless already there (a child process)."""
    import numpy as np
    import pyarrow.parquet as pq
    from _score_common import fit_model, nsl_kdd_table

    manifest = work / "setup.json"
    want = {"rows": rows, "files": files}
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        if {k: info.get(k) for k in want} == want and (work / "model").is_dir():
            return
    shutil.rmtree(work / "model", ignore_errors=True)
    shutil.rmtree(work / "data", ignore_errors=True)
    table = nsl_kdd_table(data_home)
    t = time.perf_counter()
    val = fit_model(table, work / "model")
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    feats = table.drop_columns(["label"])
    (work / "data").mkdir(parents=True)
    per = rows // files
    for i in range(files):
        rng = np.random.default_rng(i)
        n = per if i < files - 1 else rows - per * (files - 1)
        with pq.ParquetWriter(work / "data" / f"part-{i:02d}.parquet", feats.schema) as w:
            for start in range(0, n, 500_000):
                take = rng.integers(0, feats.num_rows, min(500_000, n - start))
                w.write_table(feats.take(take))
    info = {**want, "val": val, "fit_s": fit_s, "gen_s": time.perf_counter() - t}
    manifest.write_text(json.dumps(info))


def single(model: Path, data: Path, out: Path) -> None:
    """The single-process configuration: every file in turn, as ``anoean score`` does."""
    from anoean.serve.pipeline import load_pipeline
    from anoean.serve.scoring import score_file

    t0 = time.perf_counter()
    pipe = load_pipeline(model)
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for src in sorted(data.glob("*.parquet")):
        rows += score_file(pipe, src, out / src.name).rows
    print(f"scored {rows} rows in {time.perf_counter() - t0:.2f} s")


def check(data: Path, out: Path, reference: Path | None) -> None:
    """Every file, every row, the input columns plus two, no null score (a child process)."""
    import pyarrow.parquet as pq

    srcs = sorted(data.glob("*.parquet"))
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in srcs], list(out.iterdir())
    for src in srcs:
        a, b = pq.ParquetFile(src), pq.ParquetFile(out / src.name)
        assert b.metadata.num_rows == a.metadata.num_rows, src
        assert b.schema_arrow.names == [*a.schema_arrow.names, "anomaly_score", "is_anomaly"]
        assert pq.read_table(out / src.name, columns=["anomaly_score"]).column(0).null_count == 0
    if reference is not None:
        first = srcs[0].name
        assert pq.read_table(out / first).equals(pq.read_table(reference)), "scores differ"


# --------------------------------------------------------------------------- measuring
def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB (from /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def run_once(config: str, work: Path, out: Path) -> dict:
    model, data = work / "model", work / "data"
    if config == "single":
        cmd = [
            sys.executable,
            __file__,
            "--step",
            "single",
            "--workdir",
            str(work),
            "--out",
            str(out),
        ]
    else:
        n = config.split("-")[1].split("x")[0]
        cmd = [
            sys.executable, "-m", "anoean", "score", str(model), str(data), "--out", str(out),
            "--engine", "dask", "--workers", n,
        ]  # fmt: skip
    load_before = os.getloadavg()[0]
    peak, loads, done = [0.0], [], threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{config} failed ({code}): {stderr[-3000:]}")
    return {
        "config": config,
        "wall": wall,
        "cpu": ru.ru_utime + ru.ru_stime,
        "tree_rss_mb": peak[0],
        "max_rss_mb": ru.ru_maxrss / 1024,  # the largest single process (Linux: KiB)
        "load_before": load_before,
        "load_during": statistics.mean(loads) if loads else load_before,
        "load_after": os.getloadavg()[0],
        "stdout": stdout.strip().splitlines()[-1] if stdout.strip() else "",
    }


def _machine_line() -> str:
    code = (
        "from _score_common import machine_line; import dask, distributed; "
        "print(machine_line() + f'; dask {dask.__version__}, distributed "
        "{distributed.__version__}')"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True
    )
    return res.stdout.strip()


def _update(text: str, summary: str) -> None:
    sys.path.insert(0, str(HERE))
    from _score_common import update_section

    if not RESULTS.is_file():
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(HEADER, encoding="utf-8")
    update_section("bench_dask", text, RESULTS)
    if SCALE.is_file():
        update_section("bench_dask_summary", summary, SCALE)


def summary(runs: list[dict], rows: int) -> str:
    """The headline figures, for docs/scale.md."""
    by = {c: [r for r in runs if r["config"] == c] for c in CONFIGS}
    rate = {c: rows / statistics.median(r["wall"] for r in by[c]) for c in CONFIGS}
    scaling, share = rate["dask-2x1"] / rate["dask-1x1"], rate["dask-2x1"] / rate["single"]
    loads = [r["load_during"] for r in runs]
    return "\n".join(
        [
            "| configuration | rows/s (median) |",
            "|---|---|",
            f"| single process, 2 cores | {rate['single']:,.0f} |",
            f"| Dask, 1 worker x 1 thread | {rate['dask-1x1']:,.0f} |",
            f"| Dask, 2 workers x 1 thread | {rate['dask-2x1']:,.0f} |",
            "",
            f"2 workers reach {scaling:.2f}x the throughput of 1 (target 1.8x: "
            f"{'met' if scaling >= 1.8 else 'not met'}) and {share:.0%} of the single process "
            f"(target 90%: {'met' if share >= 0.9 else 'not met'}), with the machine's load "
            f"average at {min(loads):.1f} to {max(loads):.1f} during the runs (2.0 = both "
            f"cores busy; other jobs shared them). Medians of {len(by['single'])} runs each, "
            "end to end (process start, cluster start and model loading included).",
        ]
    )


def report(runs: list[dict], info: dict, rows: int, files: int, size_mb: float) -> str:
    by = {c: [r for r in runs if r["config"] == c] for c in CONFIGS}
    med = {c: statistics.median(r["wall"] for r in by[c]) for c in CONFIGS}
    rate = {c: rows / med[c] for c in CONFIGS}
    scaling = rate["dask-2x1"] / rate["dask-1x1"]
    overhead = rate["dask-2x1"] / rate["single"]
    loads = [x for r in runs for x in (r["load_before"], r["load_during"], r["load_after"])]
    names = {
        "single": "single process, all cores (score_file per file)",
        "dask-1x1": "Dask, 1 worker x 1 thread",
        "dask-2x1": "Dask, 2 workers x 1 thread",
    }
    val = info["val"]
    lines = [
        f"## Scoring {rows:,} rows in {files} Parquet files: Dask against a single process",
        "",
        f"Input: {files} Parquet files of {rows // files:,} rows each ({size_mb:.0f} MiB in "
        "all), each resampled with replacement (seed = the file's number) from the 125,973 "
        "rows of NSL-KDD KDDTrain+ (41 raw features: 38 numeric, 3 categorical). Model: the "
        f"benchmark AnoEAN of `bench_score.py` ({val['n_features']} preprocessed features, "
        f"validation AUC-PR {val.get('aucpr', float('nan')):.3f}); engine `auto` (ONNX "
        "Runtime) everywhere. Every run writes one output file per input (every input "
        "column plus `anomaly_score` and `is_anomaly`), checked afterwards; the Dask outputs "
        "are checked equal to the single-process output of the first file.",
        "",
        "Each run is a fresh process, timed end to end: `single` is one Python process that "
        "loads the model and runs `score_file` (what `anoean score` runs: a reader thread, "
        "a scoring pool, a writer thread) over the files in turn; `dask-NxT` is "
        "`anoean score model data/ --out out/ --engine dask --workers N`, which starts a "
        "LocalCluster of N worker processes of 1 thread, sends the model to each, and scores "
        "one file per task in the task's thread (pyarrow's pools sized to 1 thread). "
        f"Configurations were run interleaved, {len(by['single'])} times each; the table "
        "shows medians.",
        "",
        "| configuration | wall time (median) | rows/s | CPU time (median) | peak RSS, all "
        "processes | largest process | load average during |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CONFIGS:
        rs = by[c]
        lines.append(
            f"| {names[c]} | {med[c]:.1f} s | **{rate[c]:,.0f}** | "
            f"{statistics.median(r['cpu'] for r in rs):.1f} s | "
            f"{max(r['tree_rss_mb'] for r in rs):.0f} MiB | "
            f"{max(r['max_rss_mb'] for r in rs):.0f} MiB | "
            f"{statistics.median(r['load_during'] for r in rs):.2f} |"
        )
    lines += [
        "",
        f"* 2 workers against 1 worker: **{scaling:.2f}x** (target >= 1.8x: "
        f"**{'met' if scaling >= 1.8 else 'NOT met'}**).",
        f"* 2 workers of 1 thread against the single process on 2 cores: **{overhead:.0%}** "
        f"(target >= 90%: **{'met' if overhead >= 0.9 else 'NOT met'}**).",
        "",
        f"The machine has 2 cores, and it was shared: the 1-minute load average ran from "
        f"{min(loads):.1f} to {max(loads):.1f} around and during the runs (2.0 means both "
        "cores busy). Wall times include waiting for a CPU, so other jobs on the machine "
        "lower every figure, the 2-core configurations most.",
        "",
        "Runs: "
        + "; ".join(
            f"{r['config']} {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, "
            f"{r['tree_rss_mb']:.0f} MiB, load {r['load_before']:.1f}/"
            f"{r['load_during']:.1f}/{r['load_after']:.1f}"
            for r in runs
        ),
        "",
        f"Machine: {_machine_line()}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=os.environ.get("ANOEAN_DATA", str(ROOT.parent / "shared/datasets"))
    )
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workdir", default="/tmp/anoean-bench-dask")
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    parser.add_argument("--step", choices=["setup", "single", "check"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from the runs recorded in WORKDIR/runs.jsonl; run nothing",
    )
    args = parser.parse_args()
    work = Path(args.workdir)
    if args.report_only:
        lines = (work / "runs.jsonl").read_text().splitlines()
        return _finish([json.loads(x) for x in lines if x.strip()], work, args)
    if args.step == "setup":
        return setup(work, args.rows, args.files, args.data_home)
    if args.step == "single":
        return single(work / "model", work / "data", Path(args.out))
    if args.step == "check":
        ref = Path(args.reference) if args.reference else None
        return check(work / "data", Path(args.out), ref)

    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, __file__, "--workdir", str(work)]
    subprocess.run(
        [*me, "--step", "setup", "--rows", str(args.rows), "--files", str(args.files),
         "--data-home", args.data_home],
        env=ENV, check=True,
    )  # fmt: skip
    configs = [c for c in args.configs.split(",") if c]
    reference = work / "reference.parquet"
    runs = []
    record = work / "runs.jsonl"
    record.write_text("")
    for i in range(args.repeats):
        for c in configs:
            out = work / f"out-{c}"
            shutil.rmtree(out, ignore_errors=True)
            r = run_once(c, work, out)
            ref = (
                [] if c == "single" or not reference.is_file() else ["--reference", str(reference)]
            )
            subprocess.run([*me, "--step", "check", "--out", str(out), *ref], env=ENV, check=True)
            if c == "single":
                first = sorted((work / "data").glob("*.parquet"))[0].name
                shutil.copyfile(out / first, reference)
            shutil.rmtree(out, ignore_errors=True)
            runs.append(r)
            with record.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"run {i + 1} {c}: {json.dumps(r)}", flush=True)
    _finish(runs, work, args)


def _finish(runs: list[dict], work: Path, args: argparse.Namespace) -> None:
    """Print the report of ``runs`` and write it (unless ``--no-write``)."""
    if {r["config"] for r in runs} != set(CONFIGS):
        print("(not every configuration ran: no report)")
        return
    info = json.loads((work / "setup.json").read_text())
    size_mb = sum(p.stat().st_size for p in (work / "data").glob("*.parquet")) / 2**20
    text = report(runs, info, info["rows"], info["files"], size_mb)
    print(text)
    if not args.no_write:
        _update(text, summary(runs, info["rows"]))


if __name__ == "__main__":
    main()
