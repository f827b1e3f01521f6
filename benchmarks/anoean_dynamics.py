"""Per-epoch training dynamics of AnoEAN on a protocol split (the study in docs/anoean_dynamics.md).

Fits AnoEAN on ``make_split(SPLIT, seed=SEED, **OPTIONS)`` and prints, after every epoch:
the mean losses, the validation AUC-PR, D's accuracy on prior samples z ~ N(0, I) (share
called real), on training normal codes and on training anomaly codes (share called fake), the
per-dimension variance (min/median/max) and the norm of the mean of the validation normal
codes, the smallest/largest covariance eigenvalue ratio, and the median code norm of normals
and anomalies. The last line is ``RESULT {json}`` with the final validation AUC-PR (and the
test AUC-PR with ``--test``: look at it only after choosing).

``--betas`` (for either encoder) and ``--conv-batch-norm`` override the library's defaults
(``ADAM_BETAS`` and ``CONV_BATCH_NORM`` in :mod:`anoean.models.anoean.nets`), to compare choices
without editing code.

Example (the "before" configuration on a 3-vs-7 MNIST case, 12 epochs, no early stopping)::

    ANOEAN_DATA=/path/to/datasets PYTHONPATH=src python benchmarks/anoean_dynamics.py \\
        mnist-nvm 0 '{"normal": [2, 4, 5], "n_val": 500}' \\
        '{"encoder": "conv", "max_epochs": 12, "patience": null}' \\
        --betas 0.9 0.999 --conv-batch-norm 0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split")
    ap.add_argument("seed", type=int)
    ap.add_argument("options", help='JSON split options, e.g. \'{"normal": [0], "n_val": 500}\'')
    ap.add_argument("params", help='JSON AnoEAN parameters, e.g. \'{"encoder": "conv"}\'')
    ap.add_argument("--betas", type=float, nargs=2, default=None)
    ap.add_argument("--conv-batch-norm", type=int, choices=(0, 1), default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test", action="store_true", help="also print the test AUC-PR")
    args = ap.parse_args()

    import anoean.models.anoean.detector as am
    import anoean.models.anoean.nets as an
    import anoean.training.neural as tn
    from anoean.core.metrics import aucpr
    from anoean.data.protocol import make_split

    torch.set_num_threads(args.threads)
    if args.betas is not None:
        am.ADAM_BETAS = dict.fromkeys(am.ADAM_BETAS, tuple(args.betas))
    if args.conv_batch_norm is not None:
        an.CONV_BATCH_NORM = bool(args.conv_batch_norm)  # read when the encoder is built
    split = make_split(args.split, seed=args.seed, **json.loads(args.options))
    params = json.loads(args.params)

    # capture E and D (make_step receives both) and measure them after each epoch's validation
    # (AnoEAN._make_step calls the detector module's make_step; the fit template, in
    # anoean.training.neural, calls train_loop)
    captured: dict[str, torch.nn.Module] = {}
    make_step, train_loop = am.make_step, tn.train_loop

    def capturing_make_step(enc, disc, *a, **k):  # type: ignore[no-untyped-def]
        captured["enc"], captured["disc"] = enc, disc
        return make_step(enc, disc, *a, **k)

    X_val = torch.from_numpy(split.X_val)
    normal_val = torch.from_numpy(split.y_val == 0)
    X_n = torch.from_numpy(split.X_train[split.y_train == 0][:1000])
    X_a = torch.from_numpy(split.X_train[split.y_train == 1][:300])
    z = torch.randn(2000, params.get("latent_dim", 16), generator=torch.Generator().manual_seed(0))
    rows: list[dict[str, float]] = []

    def measuring_train_loop(**kw):  # type: ignore[no-untyped-def]
        evaluate = kw["evaluate"]

        def measured() -> float | None:
            score = evaluate()
            enc, disc = captured["enc"], captured["disc"]
            with torch.no_grad():
                zv, zn, za = enc(X_val), enc(X_n), enc(X_a)
                cn = zv[normal_val].double().numpy()
                var = cn.var(axis=0)
                eig = np.linalg.eigvalsh(np.cov(cn, rowvar=False))
                rows.append(
                    {
                        "val": float("nan") if score is None else score,
                        "acc_z": (disc(z) > 0).float().mean().item(),
                        "acc_n": (disc(zn) < 0).float().mean().item(),
                        "acc_a": (disc(za) < 0).float().mean().item(),
                        "var_min": var.min(),
                        "var_med": np.median(var),
                        "var_max": var.max(),
                        "mean_norm": float(np.linalg.norm(cn.mean(axis=0))),
                        "eig_ratio": float(eig[0] / eig[-1]),
                        "norm_n": float(zn.norm(dim=1).median()),
                        "norm_a": float(za.norm(dim=1).median()),
                    }
                )
            return score

        kw["evaluate"] = measured
        return train_loop(**kw)

    am.make_step, tn.train_loop = capturing_make_step, measuring_train_loop
    model = am.AnoEAN(random_state=args.seed, device="cpu", **params)
    t0 = time.perf_counter()
    model.fit(split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val)
    fit_s = time.perf_counter() - t0
    for h, r in zip(model.history_, rows, strict=True):
        print(
            f"ep{h['epoch']:3d} Ld {h['loss_d']:.3f} Le {h['loss_e']:.3f} val {r['val']:.3f} "
            f"accz {r['acc_z']:.2f} accn {r['acc_n']:.2f} acca {r['acc_a']:.2f} "
            f"var {r['var_min']:.3f}/{r['var_med']:.3f}/{r['var_max']:.3f} "
            f"|mu| {r['mean_norm']:.2f} eigr {r['eig_ratio']:.4f} "
            f"|zn| {r['norm_n']:.1f} |za| {r['norm_a']:.1f}"
        )
    out = {
        "split": args.split,
        "seed": args.seed,
        "options": json.loads(args.options),
        "params": params,
        "betas": am.ADAM_BETAS[params.get("encoder", "mlp")],
        "conv_batch_norm": an.CONV_BATCH_NORM,
        "best_epoch": model.best_epoch_,
        "n_epochs": model.n_epochs_,
        "fit_s": fit_s,
        "val_aucpr": aucpr(split.y_val, model.anomaly_score(split.X_val)),
    }
    if args.test:
        out["test_aucpr"] = aucpr(split.y_test, model.anomaly_score(split.X_test))
    print("RESULT", json.dumps(out))


if __name__ == "__main__":
    main()
