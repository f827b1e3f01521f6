"""Fit and scoring cost of the baselines and of AnoEAN on the paper's protocol splits.

For each split (NSL-KDD, and MNIST 1-vs-all with digit 0 normal, both from
:func:`anoean.data.protocol.make_split` with seed 0) and each method, on this machine's CPU:

* **train s/epoch**: median wall time of one training epoch (one pass over the training
  normals), *without* per-epoch validation scoring (the validation labels are passed as all
  normal, so early stopping is off and exactly ``--epochs`` epochs run);
* **fit s**: the whole ``fit`` call: those epochs plus scoring the validation rows for the
  threshold (for the kernel methods: the libsvm fit);
* **score rows/s**: ``anomaly_score`` throughput on test rows (best of 3 runs; one run for
  AnoGAN, whose latent search is the slow part, on the first ``--anogan-rows`` test rows of
  MNIST);
* **ratios to AnoEAN**: training time per epoch and scoring time per row of each GAN divided
  by AnoEAN's.

Models use their defaults (the originals' architectures, batch sizes and latent sizes;
AnoGAN's 500-step search); ``--epochs-*`` epochs, no hyperparameter search. The test AUC-PR
is printed as a sanity check only: a few epochs at the defaults are not the paper's results.

Run: ``ANOEAN_DATA=/path/to/datasets python benchmarks/bench_baselines.py --out
docs/benchmarks/baselines.md``. ``--threads`` sets torch's intra-op threads (default: torch's
own choice). Parts whose data cannot be loaded are reported as not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

METHODS = ["OCSVM", "SVM", "AnoGAN", "EGBAD", "ALAD", "AnoEAN"]
GANS = ["AnoGAN", "EGBAD", "ALAD"]


def load_split(name: str) -> Any:
    from anoean.data.protocol import make_split

    if name == "nsl-kdd":
        return make_split("nsl-kdd", seed=0)
    return make_split("mnist-1vall", seed=0, normal=[0])


def build(method: str, images: bool, epochs: int) -> Any:
    from anoean import AnoEAN, baselines

    if method == "AnoEAN":
        return AnoEAN(
            encoder="conv" if images else "mlp",
            max_epochs=epochs,
            patience=None,
            random_state=0,
            device="cpu",
        )
    cls = getattr(baselines, method)
    if method in GANS:
        return cls(
            network="conv" if images else "mlp",
            max_epochs=epochs,
            patience=None,
            random_state=0,
            device="cpu",
        )
    return cls(random_state=0)


def score_throughput(model: Any, X: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    best, scores = float("inf"), np.empty(0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores = model.anomaly_score(X)
        best = min(best, time.perf_counter() - t0)
    return X.shape[0] / best, scores


def run_split(name: str, split: Any, epochs: int, anogan_rows: int) -> dict[str, Any]:
    from anoean.core.metrics import aucpr

    images = split.X_train.ndim > 2
    y_val_normal = np.zeros_like(split.y_val)  # no per-epoch validation scoring, no stopping
    out: dict[str, Any] = {
        "split": name,
        "shapes": {
            "train": list(split.X_train.shape),
            "val": list(split.X_val.shape),
            "test": list(split.X_test.shape),
        },
        "n_train_normal": int((split.y_train == 0).sum()),
        "epochs": epochs,
        "methods": {},
    }
    for method in METHODS:
        model = build(method, images, epochs)
        t0 = time.perf_counter()
        model.fit(split.X_train, split.y_train, X_val=split.X_val, y_val=y_val_normal)
        fit_s = time.perf_counter() - t0
        rec: dict[str, Any] = {"fit_s": fit_s, "params": _params(model)}
        hist = getattr(model, "history_", None)
        if hist:
            rec["train_epoch_s"] = float(np.median([h["time_s"] for h in hist]))
            rec["epochs_run"] = len(hist)
            batch = getattr(model, "batch_size_", None) or model.batch_size
            rec["batch_size"] = int(batch)
            # steps per epoch: one per batch of training normals (ceil; exact here)
            rec["steps_per_epoch"] = max(1, -(-out["n_train_normal"] // int(batch)))
            rec["train_step_ms"] = 1000 * rec["train_epoch_s"] / rec["steps_per_epoch"]
        X_test, y_test = split.X_test, split.y_test
        repeats = 3
        if method == "AnoGAN":
            repeats = 1
            if images:
                X_test, y_test = X_test[:anogan_rows], y_test[:anogan_rows]
        rows_per_s, scores = score_throughput(model, X_test, repeats)
        rec.update(
            score_rows=int(X_test.shape[0]),
            score_rows_per_s=rows_per_s,
            test_aucpr_sanity=aucpr(y_test, scores),
        )
        out["methods"][method] = rec
        print(f"{name} {method}: {json.dumps(_short(rec))}", file=sys.stderr, flush=True)
    return out


def _params(model: Any) -> dict[str, Any]:
    keep = (
        "network",
        "encoder",
        "latent_dim",
        "batch_size",
        "lr",
        "n_search_iter",
        "nu",
        "C",
        "gamma",
    )
    p = model.get_params()
    return {k: p[k] for k in keep if k in p}


def _short(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items() if k != "params"
    }


def _rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2g}"


def warm_up() -> None:
    """One tiny fit first, so that torch's one-off lazy imports are not charged to a model."""
    from anoean.baselines import EGBAD

    X = np.random.default_rng(0).random((64, 5), dtype=np.float32)
    EGBAD(max_epochs=1, random_state=0, device="cpu").fit(X)


def render(
    results: list[dict[str, Any]],
    missing: dict[str, str],
    args: argparse.Namespace,
    env: dict[str, Any],
) -> str:
    lines = [
        "# Baselines vs AnoEAN: fit and scoring cost on CPU",
        "",
        f"Machine: {env['machine']}, {env['cpus']} logical CPUs, torch {env['torch']} with "
        f"{env['threads']} intra-op thread(s); load average before / after the run: "
        f"{env['load_before']} / {env['load_after']} (the machine is shared: absolute times "
        "vary with the load, ratios measured in the same run less so). Command: "
        f"`{env['command']}`.",
        "",
        "Settings: every model at its defaults (the originals' architectures, batch sizes, latent "
        "sizes and AnoGAN's 500-step latent search; AnoEAN's defaults), seed 0, no "
        "hyperparameter search; validation labels passed as all-normal so that no epoch is "
        "spent on validation scoring and exactly the stated number of epochs runs. "
        "*train s/epoch* is the median epoch time; *fit s* is the whole `fit` (epochs + scoring "
        "the validation rows for the threshold); *score rows/s* is `anomaly_score` throughput "
        "on test rows (best of 3; one run for AnoGAN). The test AUC-PR column is a sanity "
        "check of a few default epochs, **not** a result of the paper's protocol.",
        "",
    ]
    for res in results:
        sh = res["shapes"]
        lines += [
            f"## {res['split']}",
            "",
            f"train {tuple(sh['train'])} ({res['n_train_normal']} normals), validation "
            f"{tuple(sh['val'])}, test {tuple(sh['test'])}; {res['epochs']} epoch(s).",
            "",
            "| method | batch | train s/epoch | ms/step | fit s | scored rows | score rows/s "
            "| test AUC-PR (sanity) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, r in res["methods"].items():
            if "train_epoch_s" in r:
                ep = f"{r['batch_size']} | {r['train_epoch_s']:.2f} | {r['train_step_ms']:.1f}"
            else:
                ep = "n/a | n/a (libsvm) | n/a"
            lines.append(
                f"| {m} | {ep} | {r['fit_s']:.2f} | {r['score_rows']} | "
                f"{_rate(r['score_rows_per_s'])} | {r['test_aucpr_sanity']:.3f} |"
            )
        ref = res["methods"].get("AnoEAN")
        if ref:
            lines += [
                "",
                "Cost relative to AnoEAN (how many times AnoEAN's cost):",
                "",
                "| method | training time per epoch | training time per step | "
                "scoring time per row |",
                "|---|---|---|---|",
            ]
            for m in GANS:
                r = res["methods"].get(m)
                if not r:
                    continue
                lines.append(
                    f"| {m} | {r['train_epoch_s'] / ref['train_epoch_s']:.1f}x | "
                    f"{r['train_step_ms'] / ref['train_step_ms']:.1f}x | "
                    f"{ref['score_rows_per_s'] / r['score_rows_per_s']:.1f}x |"
                )
        lines.append("")
    for name, why in missing.items():
        lines += [f"## {name}: not run", "", why, ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="+", default=["nsl-kdd", "mnist-1vall"])
    ap.add_argument("--epochs-kdd", type=int, default=5)
    ap.add_argument("--epochs-mnist", type=int, default=1)
    ap.add_argument(
        "--anogan-rows",
        type=int,
        default=256,
        help="MNIST test rows scored by AnoGAN (its search is the slow part)",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="markdown report")
    ap.add_argument("--json", default=None, help="raw results")
    ap.add_argument("--from-json", default=None, help="only re-render a saved --json file")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        text = render(saved["results"], saved["missing"], args, saved["env"])
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        return

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    env = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "command": "python benchmarks/bench_baselines.py " + " ".join(sys.argv[1:]),
    }
    warm_up()
    results, missing = [], {}
    for name in args.splits:
        epochs = args.epochs_kdd if name == "nsl-kdd" else args.epochs_mnist
        try:
            split = load_split(name)
        except (ImportError, OSError, ValueError) as exc:
            missing[name] = f"could not load the split: {type(exc).__name__}: {exc}"
            print(f"{name}: not run ({exc})", file=sys.stderr)
            continue
        results.append(run_split(name, split, epochs, args.anogan_rows))
    env["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    text = render(results, missing, args, env)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results, "missing": missing}, f, indent=2)


if __name__ == "__main__":
    main()
