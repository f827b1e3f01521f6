"""The noise that the torchrun CI test's tolerance rests on: validation AUC-PR of 1-process
and 2-process (torchrun, gloo) training over training seeds, on the test's own data.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/ddp_tolerance.py --seeds 10

For each training seed (``--param random_state=s``; the split stays ``--seed 0``, as in the
test) it fits AnoEAN for the test's epochs with ``anoean fit`` and with ``torchrun
--nproc_per_node 2 ... --distributed``, and reports both validation AUC-PRs, their
difference, and the range of the single-process values: the spread a change of training
seed alone causes. Writes the ``ddp_tolerance`` section of docs/benchmarks/torchrun.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(HERE)]


def main() -> None:
    import numpy as np
    import pyarrow.parquet as pq
    from bench_torchrun import update_section

    spec = importlib.util.spec_from_file_location(
        "test_torchrun", ROOT / "tests/distributed/test_torchrun.py"
    )
    assert spec is not None and spec.loader is not None
    test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test)
    AUCPR_TOLERANCE, ENV, EPOCHS = test.AUCPR_TOLERANCE, test.ENV, test.EPOCHS
    _fit_cmd, make_table = test._fit_cmd, test.make_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="anoean-ddp-tol-"))
    data = work / "flows.parquet"
    pq.write_table(make_table(), data)
    env = {**ENV, "PYTHONPATH": str(ROOT / "src")}
    rows = []
    for s in range(args.seeds):
        out = {}
        for name, nproc in (("single", 1), ("ddp", 2)):
            model = work / f"{name}-{s}"
            cmd = [*_fit_cmd(data, model, "--param", f"random_state={s}", nproc=nproc)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            out[name] = json.loads(proc.stdout[proc.stdout.index("{") :])["validation"]["aucpr"]
        rows.append((s, out["single"], out["ddp"]))
        print(s, out, flush=True)
    single = np.array([r[1] for r in rows])
    diff = np.array([r[2] - r[1] for r in rows])
    lines = [
        "## The torchrun test's tolerance: noise over training seeds",
        "",
        "`benchmarks/ddp_tolerance.py`: the data of `tests/distributed/test_torchrun.py` "
        f"(3,150 rows, 10 features), AnoEAN for {EPOCHS} epochs, split seed 0, training seed "
        "`random_state` as below; validation AUC-PR.",
        "",
        "| random_state | 1 process | torchrun, 2 processes | difference |",
        "|---|---|---|---|",
        *(f"| {s} | {a:.4f} | {b:.4f} | {b - a:+.4f} |" for s, a, b in rows),
        "",
        f"Single-process AUC-PR over the {len(rows)} training seeds: {single.min():.4f} to "
        f"{single.max():.4f} (range {single.max() - single.min():.4f}, sd {single.std():.4f}). "
        f"Largest |2-process - 1-process| at equal seed: {np.abs(diff).max():.4f}. The test's "
        f"tolerance is {AUCPR_TOLERANCE}.",
    ]
    update_section("\n".join(lines), name="ddp_tolerance")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
