"""The KDD splits: ``nsl-kdd`` and ``kdd99`` (normal traffic against attack families, some
kept out of training), and ``kdd99-zenati`` (ALAD's and EGBAD's setting, where normal traffic
is the anomaly)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pyarrow as pa

from anoean.core.datachecks import DataWarning
from anoean.data.datasets import ATTACK_FAMILIES, KDD_CATEGORICAL, KDDData
from anoean.data.preprocessing import TabularPreprocessor
from anoean.data.protocol.draws import _choose, _draw_three, _part_arrays
from anoean.data.protocol.split import _PARTS, Split

#: the seven columns ALAD / EGBAD one-hot encode (pandas.get_dummies), in their order
ZENATI_CATEGORICAL = (
    "protocol_type",
    "service",
    "flag",
    "land",
    "logged_in",
    "is_host_login",
    "is_guest_login",
)


def _kdd_split(
    name: str, seed: int, opts: dict[str, Any], train: KDDData, test: KDDData | None
) -> Split:
    official = opts["test_file"] == "official"
    rng = np.random.default_rng(seed)
    if opts["seen_families"] is not None:
        opts["seen_families"] = list(opts["seen_families"])
    seen = _choose(rng, ATTACK_FAMILIES, opts["seen_families"], int(opts["n_seen"]), "families")
    sources = [train, test] if official and test is not None else [train]
    attack = np.concatenate([d.attack for d in sources])
    family = np.concatenate([d.family for d in sources])
    n0 = len(train)
    in_train_file = np.arange(attack.size) < n0
    is_normal = attack == "normal"
    idx = _draw_three(
        rng,
        np.ones(attack.size, dtype=bool),
        is_normal,
        in_train_file & is_normal,
        in_train_file & np.isin(family, seen),
        opts,
        "rows",
        test_from=~in_train_file if official else None,
        val_from=in_train_file if official else None,
    )
    names = np.array([f.path.name.removesuffix(".gz") for f in sources])

    def table(i: np.ndarray) -> Any:
        # every part comes from one file here, but stay correct if that ever changes
        first = i < n0
        pieces = [train.features.take(i[first])]
        if not first.all():
            pieces.append(sources[1].features.take(i[~first] - n0))
        combined = pa.concat_tables(pieces)
        order = np.argsort(np.r_[np.flatnonzero(first), np.flatnonzero(~first)], kind="stable")
        return combined.take(order)

    tables = {p: table(i) for p, i in idx.items()}
    pre = TabularPreprocessor(categorical=list(KDD_CATEGORICAL)).fit(tables["train"])
    with warnings.catch_warnings():
        # categories absent from the training part are all-zero by design (docs/protocol.md)
        warnings.simplefilter("ignore", DataWarning)
        features = {p: pre.transform(tables[p]) for p in idx}
    arrays = _part_arrays(idx, features, is_normal, attack, names, n0)
    notes = [
        f"features: {pre.n_features_out_} columns, TabularPreprocessor fitted on the "
        "training part only (min-max; unseen categories encode as all zeros)"
    ]
    return Split(
        name=name,
        seed=seed,
        options=opts,
        **arrays,
        seen=seen,
        unseen=tuple(f for f in ATTACK_FAMILIES if f not in seen),
        feature_names=pre.feature_names_out_,
        preprocessor=pre,
        notes=notes,
    )


def _take_ratio(
    rng: np.random.Generator, n_in: int, pool: np.ndarray, rho: float, part: str, notes: list[str]
) -> np.ndarray:
    """ALAD's ``_adapt_ratio``: int(n_in * rho / (1 - rho)) anomalies, or all if fewer."""
    want = int(n_in * rho / (1.0 - rho))
    if want > pool.size:
        notes.append(
            f"{part}: {want:,} anomalies needed for {rho:.0%}, only {pool.size:,} available; "
            f"all taken ({pool.size / (n_in + pool.size):.2%} anomalous), as ALAD's "
            "_adapt_ratio does"
        )
    return rng.permutation(pool)[:want]


def _zenati_split(seed: int, opts: dict[str, Any], data: KDDData) -> Split:
    if data.dataset != "kdd99" or data.subset != "train":
        raise ValueError("kdd99-zenati needs the KDD Cup 99 10% file (load_kdd99(subset='train'))")
    rho = float(opts["test_anomaly_rate"])
    if rho >= 1.0:
        raise ValueError("test_anomaly_rate must be below 1 for kdd99-zenati")
    rng = np.random.default_rng(seed)
    n = len(data)
    is_anomaly = data.attack == "normal"  # their convention: normal traffic is the anomaly
    perm = rng.permutation(n)
    n_half = int(round(float(opts["train_fraction"]) * n))
    half_train, half_test = perm[:n_half], perm[n_half:]
    n_val = int(round(float(opts["val_fraction"]) * n_half))
    val_slice, rest = half_train[:n_val], half_train[n_val:]
    notes: list[str] = []
    train_idx = rest[~is_anomaly[rest]]
    val_in = val_slice[~is_anomaly[val_slice]]
    val_out = _take_ratio(rng, val_in.size, half_train[is_anomaly[half_train]], rho, "val", notes)
    test_in = half_test[~is_anomaly[half_test]]
    test_out = _take_ratio(rng, test_in.size, half_test[is_anomaly[half_test]], rho, "test", notes)
    idx = {
        "train": train_idx,
        "val": rng.permutation(np.r_[val_in, val_out]),
        "test": rng.permutation(np.r_[test_in, test_out]),
    }
    # categories from the whole file, as pandas.get_dummies on the full frame does there
    pre = TabularPreprocessor(categorical=list(ZENATI_CATEGORICAL), scaling="none")
    pre.fit(data.features)
    arrays: dict[str, Any] = {}
    for p, i in idx.items():
        arrays[f"X_{p}"] = pre.transform(data.features.take(i))
        arrays[f"y_{p}"] = is_anomaly[i].astype(np.int64)
        arrays[f"c_{p}"] = data.attack[i]
        arrays[f"src_{p}"] = np.full(i.size, data.path.name.removesuffix(".gz"))
        arrays[f"row_{p}"] = i.astype(np.int64)
    if opts["scale"]:
        lo = arrays["X_train"].min(axis=0)
        span = arrays["X_train"].max(axis=0) - lo
        span[span == 0] = 1.0
        for p in _PARTS:
            arrays[f"X_{p}"] = ((arrays[f"X_{p}"] - lo) / span).astype(np.float32)
        notes.append("features min-max scaled on the training part (ALAD's scale=True)")
    else:
        notes.append("features unscaled, as in the ALAD and EGBAD code (scale=True to scale)")
    notes.insert(
        0,
        f"{pre.n_features_out_} features: 34 numeric columns + one-hot of "
        f"{', '.join(ZENATI_CATEGORICAL)} (categories from the whole file)",
    )
    notes.insert(1, "anomalies (y=1) are the 'normal.' rows; training holds attacks only")
    return Split(
        name="kdd99-zenati",
        seed=seed,
        options=opts,
        **arrays,
        seen=(),
        unseen=("normal",),
        feature_names=pre.feature_names_out_,
        preprocessor=pre,
        notes=notes,
    )
