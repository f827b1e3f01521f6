"""How the number of anomalies per training batch changes AnoEAN, on validation data only.

AnoEAN's training step takes ``batch_size`` normals and, alongside, a batch of labelled
anomalies (``anoean.training.loop.EpochBatches``): by default in proportion to their share of the
training set, at least 16 (20 per 200 normals in the paper's 10% protocol). This script
refits AnoEAN on one protocol split with other anomaly batch sizes (the anomalies are cycled,
so a larger batch shows each one more often per epoch) and prints, for each, the best
validation AUC-PR of early stopping (the paper's in-sample rule) and the cross-fitted
validation AUC-PR of the kept model (``anoean.core.gaussian.validation_aucpr``, docs/results.md).
The test part of the split is never touched.

Example (the split of the investigation in docs/results.md)::

    ANOEAN_DATA=/path/to/datasets PYTHONPATH=src python benchmarks/anoean_batch_composition.py \\
        mnist-nvm 0 '{"normal": [2, 4, 5], "n_val": 500}' \\
        '{"encoder": "conv", "latent_dim": 32, "max_epochs": 30}' --anomaly-batch 20 50 100 200

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split")
    ap.add_argument("seed", type=int)
    ap.add_argument("options", help='JSON split options, e.g. \'{"normal": [0], "n_val": 500}\'')
    ap.add_argument("params", help='JSON AnoEAN parameters, e.g. \'{"encoder": "conv"}\'')
    ap.add_argument(
        "--anomaly-batch",
        type=int,
        nargs="+",
        default=[0, 50, 100, 200],
        help="anomalies per step; 0 = the library's default (proportional, at least 16)",
    )
    ap.add_argument("--model-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import anoean.models.anoean.detector as mod
    from anoean.core.gaussian import validation_aucpr
    from anoean.data.protocol import make_split
    from anoean.models.anoean.detector import AnoEAN
    from anoean.training.loop import EpochBatches

    split = make_split(args.split, seed=args.seed, **json.loads(args.options))
    rows = []
    for k in args.anomaly_batch:

        class Batches(EpochBatches):
            def __init__(self, *a, k=k, **kw):  # type: ignore[no-untyped-def]
                super().__init__(*a, **kw)
                if k and self.n_anomaly:
                    self.anomaly_batch = min(k, self.n_anomaly)

        mod.EpochBatches = Batches  # type: ignore[misc]
        try:
            for ms in args.model_seeds:
                est = AnoEAN(**{**json.loads(args.params), "random_state": ms, "device": "cpu"})
                t0 = time.perf_counter()
                est.fit(split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val)
                codes = est.transform(split.X_val)
                row = {
                    "anomaly_batch": k or "default",
                    "model_seed": ms,
                    "epochs": len(est.history_),
                    "best_epoch": max(
                        (h for h in est.history_ if h["val_aucpr"] is not None),
                        key=lambda h: h["val_aucpr"],
                    )["epoch"],
                    "val_aucpr_in_sample": validation_aucpr(codes, split.y_val, cross_fit=False),
                    "val_aucpr_cross_fit": validation_aucpr(
                        codes, split.y_val, cross_fit=True, seed=ms
                    ),
                    "fit_s": time.perf_counter() - t0,
                }
                rows.append(row)
                print(
                    f"anomaly batch {str(row['anomaly_batch']):>7}  seed {ms}  "
                    f"epochs {row['epochs']:3d}  in-sample {row['val_aucpr_in_sample']:.4f}  "
                    f"cross-fit {row['val_aucpr_cross_fit']:.4f}  {row['fit_s']:.0f} s",
                    flush=True,
                )
        finally:
            mod.EpochBatches = EpochBatches  # type: ignore[misc]
    print("RESULT " + json.dumps({"split": args.split, "seed": args.seed, "rows": rows}))


if __name__ == "__main__":
    main()
