"""AnoEAN with one opt-in setting changed, run exactly as the reproduction runs.

docs/results.md ("Why AnoEAN falls short", finding 2) shows that the paper's validation rule
(mu and Sigma fitted on the validation normals, then the validation AUC-PR computed on those
same normals) is optimistic, more so for large latent spaces, and that it drives both early
stopping and the choice of the latent size. ``AnoEAN(validation_score="cross_fit")`` fits
mu and Sigma on one half of the validation normals and scores the other half (2 folds).

This script answers the question that finding leaves open: does the held-out criterion give
better *test* results? It re-does reproduction runs (same split, seed, grid and fixed
settings, through :func:`anoean.experiments.runner.run_one`) with only
``validation_score="cross_fit"`` added, and sets each record beside the reproduction's own
record of the run (``--reference``, by default ``docs/results/runs_full.jsonl``). It is an
evaluation of an opt-in variant, not a selection: nothing here feeds back into the
package's defaults or the reproduction's settings.

Example (the five n-vs-m cases, seeds 0-4; about 2 minutes per run on one idle core)::

    ANOEAN_DATA=../shared/datasets PYTHONPATH=src python benchmarks/anoean_validation_score.py \\
        --experiment mnist-nvm --seeds 0 1 2 3 4 --out cross_fit.jsonl

``--set KEY=VALUE`` picks the setting (default ``validation_score=cross_fit``). The same
comparison for mu and Sigma estimated on the training normals (finding 3)::

    ANOEAN_DATA=../shared/datasets PYTHONPATH=src python benchmarks/anoean_validation_score.py \
        --set gaussian_fit=train --experiment mnist-nvm --seeds 0 1 --out train_fit.jsonl

Records are appended to ``--out`` (one JSON line per run, the reproduction's format) and
runs already there are skipped, so it resumes. The summary table compares mean test AUC-PR
per case over the seeds both files have.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="mnist-nvm")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--cases", nargs="*", default=None, help="e.g. n2 n3 (default: all)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reference", type=Path, default=REPO / "docs/results/runs_full.jsonl")
    ap.add_argument("--data-home", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument(
        "--set",
        default="validation_score=cross_fit",
        help="the AnoEAN setting to add, KEY=VALUE (default: validation_score=cross_fit)",
    )
    args = ap.parse_args()
    key, sep, value = args.set.partition("=")
    if not sep or not key or not value:
        ap.error(f"--set expects KEY=VALUE; got {args.set!r}")
    torch.set_num_threads(args.threads)

    import anoean.experiments.runner as runner
    from anoean.experiments.methods import method_spec

    def variant_spec(name, **kw):  # type: ignore[no-untyped-def]
        spec = method_spec(name, **kw)
        if name != "anoean":
            return spec
        return dataclasses.replace(spec, fixed={**spec.fixed, key: value})

    ref = {r["run_id"]: r for r in runner.read_runs(args.reference)} if args.reference else {}
    done = {r["run_id"]: r for r in runner.read_runs(args.out)} if args.out.exists() else {}
    plan = [
        r
        for r in runner.plan_runs([args.experiment], ["anoean"], args.seeds, quick=False)
        if args.cases is None or r.case in args.cases
    ]
    if not args.summary_only:
        runner.method_spec = variant_spec  # type: ignore[assignment]
        try:
            for run in plan:
                if run.run_id in done:
                    continue
                rec = runner.run_one(run, quick=False, data_home=args.data_home)
                assert rec["config"]["selected"][key] == value
                with args.out.open("a") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
                done[run.run_id] = rec
                base = ref.get(run.run_id)
                base_txt = (
                    f"paper's rule {base['metrics']['aucpr']:.4f} "
                    f"(d={base['config']['selected']['latent_dim']})"
                    if base
                    else "no reference record"
                )
                print(
                    f"{run.run_id}: {args.set} {rec['metrics']['aucpr']:.4f} "
                    f"(d={rec['config']['selected']['latent_dim']}, {rec['wall_s']:.0f} s); "
                    + base_txt,
                    flush=True,
                )
        finally:
            runner.method_spec = method_spec  # type: ignore[assignment]
    summary(plan, done, ref, "cross-fit" if args.set == "validation_score=cross_fit" else args.set)


def _pm(v: list[float]) -> str:
    if len(v) < 2:
        return "n/a"
    return f"{100 * np.mean(v):.1f} ± {100 * np.std(v, ddof=1):.1f}"


def summary(plan, done, ref, label="cross-fit") -> None:  # type: ignore[no-untyped-def]
    """Per case: mean ± std (ddof=1, as in the report) of the test AUC-PR, and of the AUROC on
    unseen anomalies, over the seeds with both records; the SVM's AUC-PR for comparison."""
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in plan:
        new, old = done.get(run.run_id), ref.get(run.run_id)
        if new is None or old is None:
            continue
        row = rows[run.case]
        row["variant"].append(new["metrics"]["aucpr"])
        row["default"].append(old["metrics"]["aucpr"])
        row["d_variant"].append(new["config"]["selected"]["latent_dim"])
        row["d_default"].append(old["config"]["selected"]["latent_dim"])
        for key, rec in (("unseen_variant", new), ("unseen_default", old)):
            unseen = rec.get("metrics_by_group", {}).get("unseen")
            if unseen:
                row[key].append(unseen["auroc"])
        for m in ("svm", "ocsvm"):
            other = ref.get(run.run_id.replace("/anoean/", f"/{m}/"))
            if other:
                row[m].append(other["metrics"]["aucpr"])
    print(
        f"| case | seeds | AnoEAN, paper's rule | AnoEAN, {label} | difference | "
        f"latent sizes, paper's rule | latent sizes, {label} | unseen AUROC, paper's rule | "
        f"unseen AUROC, {label} | SVM |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    diffs = []
    for case in sorted(rows):
        r = rows[case]
        a, b = np.array(r["default"]), np.array(r["variant"])
        diffs.extend(b - a)

        print(
            f"| {case} | {len(a)} | {_pm(a)} | {_pm(b)} | {100 * np.mean(b - a):+.1f} | "
            f"{r['d_default']} | {r['d_variant']} | {_pm(r['unseen_default'])} | "
            f"{_pm(r['unseen_variant'])} | {_pm(r['svm'])} |"
        )
    if diffs:
        d = 100 * np.array(diffs)
        print(
            f"\nall runs: mean difference {d.mean():+.2f} points, {label} better in "
            f"{int((d > 0).sum())} of {len(d)}, worse in {int((d < 0).sum())}"
        )


if __name__ == "__main__":
    main()
