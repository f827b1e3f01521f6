"""What the reduced MNIST budget costs the GAN baselines, on validation data only.

``anoean reproduce`` trains AnoGAN, EGBAD and ALAD on MNIST for 4 epochs at lr 2e-4 (AnoGAN:
a 20-step latent search) because the originals' settings take hours per run on a CPU
(docs/results.md). This script fits one baseline on a protocol split for more epochs, with no
early stopping, and prints the validation AUC-PR after every epoch, so one can see how far
epoch 4 is from where the curve goes. For AnoGAN it also scores the validation set of the
final model with several search lengths. The test part of the split is never touched.

Example (the split of the AnoEAN investigation in docs/results.md)::

    ANOEAN_DATA=/path/to/datasets PYTHONPATH=src python benchmarks/gan_budget.py \\
        egbad mnist-nvm 0 '{"normal": [2, 4, 5], "n_val": 500}' --epochs 12

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method", choices=("anogan", "egbad", "alad"))
    ap.add_argument("split")
    ap.add_argument("seed", type=int)
    ap.add_argument("options", help='JSON split options, e.g. \'{"normal": [0], "n_val": 500}\'')
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument(
        "--search",
        type=int,
        nargs="+",
        default=[20, 100],
        help="AnoGAN: latent-search lengths to score the final model's validation set with",
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from anoean.baselines import ALAD, EGBAD, AnoGAN
    from anoean.core.metrics import aucpr
    from anoean.data.protocol import make_split

    split = make_split(args.split, seed=args.seed, **json.loads(args.options))
    cls = {"anogan": AnoGAN, "egbad": EGBAD, "alad": ALAD}[args.method]
    params: dict = dict(
        network="conv",
        lr=args.lr,
        max_epochs=args.epochs,
        patience=None,
        device="cpu",
        random_state=args.seed,
    )
    if args.method == "anogan":
        # per-epoch check with the reduced budget's proxy (2 steps); final scores below
        params.update(n_search_iter=min(args.search), val_search_iter=2)
    est = cls(**params)
    t0 = time.perf_counter()
    est.fit(split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val)
    fit_s = time.perf_counter() - t0
    curve = [h["val_aucpr"] for h in est.history_]
    for h in est.history_:
        print(f"epoch {h['epoch']:3d}  val AUC-PR {h['val_aucpr']:.4f}  {h['time_s']:.1f} s")
    result: dict = {
        "method": args.method,
        "split": args.split,
        "seed": args.seed,
        "options": json.loads(args.options),
        "lr": args.lr,
        "epochs": args.epochs,
        "val_aucpr_per_epoch": curve,
        "anomaly_share_val": float(np.mean(split.y_val)),
        "fit_s": fit_s,
    }
    if args.method == "anogan":
        # the fit restored the best epoch (by the 2-step proxy); score its validation set
        searches = {}
        for n in args.search:
            est.n_search_iter = n
            t0 = time.perf_counter()
            s = est.anomaly_score(split.X_val)
            searches[str(n)] = {"val_aucpr": aucpr(split.y_val, s), "s": time.perf_counter() - t0}
            print(f"search {n:4d} steps: val AUC-PR {searches[str(n)]['val_aucpr']:.4f}")
        result["best_epoch_search"] = searches
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
