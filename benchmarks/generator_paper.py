"""The anomaly generator on the paper's protocol: two studies, one JSON line per run.

``--study unseen``: does the generator help AnoEAN on kinds of anomaly never seen in
training? The paper's NSL-KDD protocol (10% labelled anomalies, from the training file's families
only) with the test set drawn from the official test file KDDTest+, whose attack families
partly never occur in training. For each seed, AnoEAN is fitted as in the reproduction
(``anoean reproduce --experiments nsl-kdd-official``: the paper's defaults, latent_dim chosen
on the validation AUC-PR over its grid) with ``generate_anomalies=False`` (the paper's
method) and ``True`` (the learned generator beside the labelled anomalies), and the AUROC
and AUC-PR on the test normals plus the unseen families only (and plus the seen ones) are
recorded.

``--study mnist-oneclass``: MNIST one-vs-all with no anomaly in training, as the paper
trains OCSVM, EGBAD and ALAD: AnoEAN (conv encoder, the reproduction's budget: 30 epochs,
patience 10, latent_dim chosen over its grid on the validation AUC-PR, as OCSVM's nu and
gamma are) is fitted on the training normals only, with the generator ("generator") and
without ("one-class"), and compared with the reproduction's OCSVM runs of the same seed and
digit (``docs/results/runs_full.jsonl``).

Each run is one JSON line in ``--out`` (resumable), with its config, seed, versions and
commit:

    python benchmarks/generator_paper.py --study unseen --seeds 5
    python benchmarks/generator_paper.py --study mnist-oneclass --seeds 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "unseen": {"paper": False, "generator": True},
    "mnist-oneclass": {"one-class": False, "generator": True},
}
OUT = {
    "unseen": ROOT / "benchmarks/results/generator_unseen.jsonl",
    "mnist-oneclass": ROOT / "benchmarks/results/generator_mnist_oneclass.jsonl",
}


def _commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def run(study: str, seed: int, case: int | None, variant: str, data_home: str | None) -> dict:
    from anoean import AnoEAN
    from anoean.core.metrics import evaluate
    from anoean.core.registry import METHODS
    from anoean.core.runtime import versions
    from anoean.data.protocol import make_split
    from anoean.experiments.runner import metrics_by_group, mnist_options
    from anoean.experiments.search import select_hyperparameters

    t0 = time.perf_counter()
    base: dict[str, Any] = {
        "device": "cpu",
        "random_state": seed,
        "generate_anomalies": VARIANTS[study][variant],
    }
    if study == "unseen":
        split = make_split("nsl-kdd", seed=seed, data_home=data_home, test_file="official")
        X, y = split.X_train, split.y_train
    else:
        assert case is not None
        split = make_split("mnist-1vall", seed=seed, data_home=data_home, **mnist_options([case]))
        X, y = split.X_train[split.y_train == 0], split.y_train[split.y_train == 0]
        base.update(encoder="conv", max_epochs=30, patience=10)
    grid = METHODS["anoean"].grid
    search = select_hyperparameters(AnoEAN, grid, X, y, split.X_val, split.y_val, base_params=base)
    scores = np.asarray(search.best_estimator.anomaly_score(split.X_test))
    return {
        "study": study,
        "seed": seed,
        "case": case,
        "variant": variant,
        "config": {**base, **search.best_params, "grid": grid},
        "n_train": int(X.shape[0]),
        "n_train_anomalies": int(y.sum()),
        "val_aucpr": search.best_score,
        "metrics": evaluate(split.y_test, scores),
        "by_group": metrics_by_group(split, scores) if study == "unseen" else {},
        "epochs": search.best_estimator.n_epochs_,
        "wall_s": time.perf_counter() - t0,
        "versions": versions(),
        "commit": _commit(),
    }


def _ocsvm_reference() -> dict[tuple[int, int], float]:
    """The reproduction's OCSVM AUC-PR on MNIST one-vs-all, by (seed, digit)."""
    path = ROOT / "docs/results/runs_full.jsonl"
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["experiment"] == "mnist-1vall" and r["method"] == "ocsvm":
            out[(int(r["seed"]), int(r["case"].removeprefix("digit")))] = r["metrics"]["aucpr"]
    return out


def summarise(study: str, rows: list[dict]) -> None:
    if study == "unseen":
        for variant in VARIANTS[study]:
            vals = [r["by_group"]["unseen"]["auroc"] for r in rows if r["variant"] == variant]
            if vals:
                mean, std = 100 * np.mean(vals), 100 * np.std(vals)
                print(f"{variant}: unseen AUROC {mean:.1f} +- {std:.1f} ({len(vals)} seeds)")
        return
    ref = _ocsvm_reference()
    print("digit | " + " | ".join(VARIANTS[study]) + " | OCSVM (same seeds)")
    for digit in range(10):
        cells = []
        seeds = sorted({r["seed"] for r in rows if r["case"] == digit})
        for variant in VARIANTS[study]:
            mine = [r for r in rows if r["case"] == digit and r["variant"] == variant]
            vals = [r["metrics"]["aucpr"] for r in mine]
            cells.append(f"{100 * np.mean(vals):.1f}" if vals else "-")
        oc = [ref[(s, digit)] for s in seeds if (s, digit) in ref]
        cells.append(f"{100 * np.mean(oc):.1f}" if oc else "-")
        print(f"{digit} | " + " | ".join(cells) + f" | seeds {seeds}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=sorted(VARIANTS), default="unseen")
    ap.add_argument("--seeds", default="5", help="N (seeds 0..N-1) or a list: 0,3")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data-home", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default=None, help="comma-separated (default: all)")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out: Path = args.out or OUT[args.study]
    seeds = [int(s) for s in args.seeds.split(",")] if "," in args.seeds else range(int(args.seeds))
    cases: list[int | None] = [None] if args.study == "unseen" else list(range(10))
    variants = args.variants.split(",") if args.variants else list(VARIANTS[args.study])
    unknown = sorted(set(variants) - set(VARIANTS[args.study]))
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS[args.study])}")
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["seed"], r.get("case"), r["variant"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in [] if args.summary_only else seeds:
        for case in cases:
            for variant in variants:
                if (seed, case, variant) in done:
                    continue
                rec = run(args.study, seed, case, variant, args.data_home)
                with out.open("a") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
                print(f"seed {seed} case {case} {variant}: {rec['metrics']}", flush=True)
    if out.is_file():
        summarise(args.study, [json.loads(line) for line in out.read_text().splitlines()])


if __name__ == "__main__":
    main()
