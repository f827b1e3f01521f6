"""The paper's evaluation protocol: deterministic train / validation / test splits.

:func:`make_split` loads a dataset and draws the three parts; every random choice comes from
``numpy.random.default_rng(seed)``, so a seed fixes the split. ``docs/protocol.md`` states
every choice and why. In short, for all names but ``kdd99-zenati``:

- train: ``n_train_normal`` normal samples plus ``round(train_anomaly_ratio *
  n_train_normal)`` labelled anomalies, drawn only from the *seen* anomaly classes;
- test: ``n_test`` samples, ``round(test_anomaly_rate * n_test)`` of them anomalies from
  *all* anomaly classes;
- validation: ``n_val`` samples with the test set's class mix, disjoint from both;
- every draw is uniform without replacement from what the earlier draws left, in the order
  train, test, validation; too few candidates is an error, never a smaller draw.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .datachecks import DataWarning
from .datasets import (
    ATTACK_FAMILIES,
    KDD_CATEGORICAL,
    KDDData,
    MNISTData,
    attack_family,
    load_kdd99,
    load_mnist,
    load_nsl_kdd,
)
from .preprocessing import TabularPreprocessor

__all__ = ["NAMES", "Split", "make_split", "make_split_from"]

logger = logging.getLogger(__name__)

NAMES = ("mnist-1vall", "mnist-nvm", "nsl-kdd", "kdd99", "kdd99-zenati")

_PARTS = ("train", "val", "test")

_SIZES = {
    "n_train_normal": 5000,
    "train_anomaly_ratio": 0.1,
    "n_test": 1700,
    "test_anomaly_rate": 0.2,
    "n_val": 1700,
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    # n_val is 500 for one-vs-all: with 5,000 + 1,360 normal images used by train and
    # test, digits 4 and 8 have only 464 / 465 images left (docs/protocol.md)
    "mnist-1vall": {**_SIZES, "n_val": 500, "normal": None, "n_seen": 4, "seen_digits": None},
    "mnist-nvm": {**_SIZES, "normal": None, "n_seen": 4, "seen_digits": None},
    "nsl-kdd": {**_SIZES, "seen_families": ("DoS", "Probe"), "n_seen": 2, "test_file": "same"},
    "kdd99": {**_SIZES, "seen_families": ("DoS", "Probe"), "n_seen": 2, "test_file": "same"},
    "kdd99-zenati": {
        "train_fraction": 0.5,
        "val_fraction": 0.1,
        "test_anomaly_rate": 0.2,
        "scale": False,
    },
}

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


@dataclass(eq=False)
class Split:
    """A train / validation / test split with its provenance.

    Attributes
    ----------
    name, seed, options
        What :func:`make_split` was called with; ``options`` includes the defaults used.
    X_train, X_val, X_test : numpy.ndarray of float32
        Features: (n, 1, 28, 28) images in [0, 1] for MNIST, (n, d) tables for KDD.
    y_train, y_val, y_test : numpy.ndarray of int64
        1 for an anomaly, 0 for a normal sample.
    c_train, c_val, c_test : numpy.ndarray
        The original class: the digit (int) for MNIST, the attack name (str) for KDD.
    src_train, src_val, src_test : numpy.ndarray of str
        The file each sample comes from.
    row_train, row_val, row_test : numpy.ndarray of int64
        The sample's index in that file (0-based), so a split can be traced and checked.
    seen, unseen : tuple
        Anomaly classes allowed in the training set, and those kept out of it (digits, or
        KDD attack families).
    feature_names : list of str or None
        Column names of the tabular features.
    preprocessor : TabularPreprocessor or None
        The fitted preprocessor that produced the tabular features.
    notes : list of str
        Facts about this split worth reading (shown by :meth:`describe`).
    """

    name: str
    seed: int
    options: dict[str, Any]
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    c_train: np.ndarray = field(repr=False)
    c_val: np.ndarray = field(repr=False)
    c_test: np.ndarray = field(repr=False)
    src_train: np.ndarray = field(repr=False)
    src_val: np.ndarray = field(repr=False)
    src_test: np.ndarray = field(repr=False)
    row_train: np.ndarray = field(repr=False)
    row_val: np.ndarray = field(repr=False)
    row_test: np.ndarray = field(repr=False)
    seen: tuple = ()
    unseen: tuple = ()
    feature_names: list[str] | None = field(default=None, repr=False)
    preprocessor: TabularPreprocessor | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list, repr=False)

    def part(self, name: str) -> tuple[np.ndarray, ...]:
        """``(X, y, c, src, row)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in _PARTS:
            raise ValueError(f"part must be one of {_PARTS}, got {name!r}")
        return tuple(getattr(self, f"{k}_{name}") for k in ("X", "y", "c", "src", "row"))

    def _group(self, c: np.ndarray) -> np.ndarray:
        return attack_family(c) if c.dtype.kind in "US" else c

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary: options, sizes, and counts per source and class."""
        parts: dict[str, Any] = {}
        for p in _PARTS:
            X, y, c, src, _ = self.part(p)
            by_source: dict[str, dict[str, int]] = {}
            for s in sorted(set(src.tolist())):
                m = src == s
                by_source[s] = {str(k): int(v) for k, v in sorted(Counter(c[m].tolist()).items())}
            parts[p] = {
                "n": int(len(y)),
                "n_normal": int((y == 0).sum()),
                "n_anomalous": int((y == 1).sum()),
                "by_source": by_source,
            }
        return {
            "name": self.name,
            "seed": int(self.seed),
            "options": _jsonable(self.options),
            "seen": _jsonable(list(self.seen)),
            "unseen": _jsonable(list(self.unseen)),
            "feature_shape": list(self.X_train.shape[1:]),
            "parts": parts,
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        """A human-readable account of what was drawn from where."""
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        lines = [f"split {self.name!r}, seed {self.seed} ({opts})"]
        lines.append(
            f"anomaly classes in training: {_fmt_classes(self.seen)}; "
            f"kept out of training: {_fmt_classes(self.unseen)}"
        )
        for p in _PARTS:
            X, y, c, src, _ = self.part(p)
            n, n_an = len(y), int(y.sum())
            lines.append(
                f"{p}: {n:,} rows = {n - n_an:,} normal + {n_an:,} anomalous "
                f"({100.0 * n_an / max(n, 1):.2f}% anomalous)"
            )
            for s in sorted(set(src.tolist())):
                m = src == s
                lines.append(f"  from {s}: {m.sum():,} rows")
                for label, mask in ((0, y == 0), (1, y == 1)):
                    mm = m & mask
                    if not mm.any():
                        continue
                    kind = "y=0 (normal class)" if label == 0 else "y=1 (anomalies)"
                    lines.append(f"    {kind}: {_fmt_counts(c[mm], self._group(c[mm]))}")
        shape = "x".join(str(d) for d in self.X_train.shape[1:])
        lines.append(f"features: float32, shape per sample {shape}")
        lines.extend(f"note: {t}" for t in self.notes)
        return "\n".join(lines)


def _fmt_classes(classes: Sequence[Any]) -> str:
    return ", ".join(str(x) for x in classes) if len(classes) else "none"


def _fmt_counts(c: np.ndarray, groups: np.ndarray) -> str:
    if c.dtype.kind not in "US":
        return "; ".join(f"digit {k}: {v:,}" for k, v in sorted(Counter(c.tolist()).items()))
    out = []
    for g, gv in sorted(Counter(groups.tolist()).items()):
        detail = ", ".join(
            f"{k} {v:,}"
            for k, v in sorted(Counter(c[groups == g].tolist()).items(), key=lambda kv: -kv[1])
        )
        out.append(f"{g} {gv:,}" + (f" ({detail})" if detail != f"{g} {gv:,}" else ""))
    return "; ".join(out)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


# ------------------------------------------------------------------- helpers
def _options(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    if name not in _DEFAULTS:
        raise ValueError(f"unknown split name {name!r}; choose one of {NAMES}")
    unknown = sorted(set(given) - set(_DEFAULTS[name]))
    if unknown:
        raise ValueError(
            f"unknown option(s) for {name!r}: {unknown}; valid: {sorted(_DEFAULTS[name])}"
        )
    opts = {**_DEFAULTS[name], **given}
    for k in ("n_train_normal", "n_test", "n_val", "n_seen"):
        if k in opts and (not isinstance(opts[k], int | np.integer) or opts[k] < 0):
            raise ValueError(f"{k} must be a non-negative integer, got {opts[k]!r}")
    for k in ("train_anomaly_ratio", "test_anomaly_rate", "train_fraction", "val_fraction"):
        if k in opts and not 0.0 <= float(opts[k]) <= 1.0:
            raise ValueError(f"{k} must be within [0, 1], got {opts[k]!r}")
    return opts


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _draw(
    rng: np.random.Generator,
    available: np.ndarray,
    eligible: np.ndarray,
    n: int,
    what: str,
    hint: str,
) -> np.ndarray:
    """Draw n indices uniformly without replacement; mark them unavailable."""
    pool = np.flatnonzero(available & eligible)
    if n > pool.size:
        raise ValueError(
            f"cannot draw {n:,} {what}: only {pool.size:,} remain "
            f"({int(eligible.sum()):,} in all, before earlier draws). {hint}"
        )
    idx = np.sort(rng.choice(pool, size=n, replace=False)) if n else pool[:0]
    available[idx] = False
    return idx


def _counts(opts: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
    n_tr = int(opts["n_train_normal"])
    n_tr_an = int(round(opts["train_anomaly_ratio"] * n_tr))
    n_te_an = int(round(opts["test_anomaly_rate"] * opts["n_test"]))
    n_va_an = int(round(opts["test_anomaly_rate"] * opts["n_val"]))
    return (
        n_tr,
        n_tr_an,
        int(opts["n_test"]) - n_te_an,
        n_te_an,
        int(opts["n_val"]) - n_va_an,
        n_va_an,
    )


def _draw_three(
    rng: np.random.Generator,
    available: np.ndarray,
    is_normal: np.ndarray,
    train_normal: np.ndarray,
    train_anomalous: np.ndarray,
    opts: Mapping[str, Any],
    what: str,
    test_from: np.ndarray | None = None,
    val_from: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Indices of the train, test and validation parts, each shuffled.

    ``train_normal`` / ``train_anomalous`` say which samples may enter training; test and
    validation draw from every normal / anomalous sample left, restricted to ``test_from``
    / ``val_from`` when given (e.g. the official test file).
    """
    n_tr, n_tr_an, n_te, n_te_an, n_va, n_va_an = _counts(opts)
    hint = (
        "Lower n_train_normal, train_anomaly_ratio, n_test or n_val, or choose other "
        "seen classes (see docs/protocol.md)."
    )
    everywhere = np.ones_like(is_normal)
    te_ok = everywhere if test_from is None else test_from
    va_ok = everywhere if val_from is None else val_from
    out = {}
    tr = np.r_[
        _draw(rng, available, train_normal, n_tr, f"normal {what} for training", hint),
        _draw(
            rng, available, train_anomalous, n_tr_an, f"seen anomalous {what} for training", hint
        ),
    ]
    out["train"] = rng.permutation(tr)
    te = np.r_[
        _draw(rng, available, is_normal & te_ok, n_te, f"normal {what} for the test set", hint),
        _draw(
            rng, available, ~is_normal & te_ok, n_te_an, f"anomalous {what} for the test set", hint
        ),
    ]
    out["test"] = rng.permutation(te)
    va = np.r_[
        _draw(rng, available, is_normal & va_ok, n_va, f"normal {what} for validation", hint),
        _draw(
            rng, available, ~is_normal & va_ok, n_va_an, f"anomalous {what} for validation", hint
        ),
    ]
    out["val"] = rng.permutation(va)
    return out


def _choose(
    rng: np.random.Generator, candidates: Sequence[Any], explicit: Any, n: int, what: str
) -> tuple:
    """The seen anomaly classes: ``explicit`` if given, else ``n`` drawn by the seed."""
    if explicit is not None:
        chosen = list(explicit) if not isinstance(explicit, str) else [explicit]
        bad = [x for x in chosen if x not in candidates]
        if bad or not chosen or len(set(chosen)) != len(chosen):
            raise ValueError(
                f"seen {what} {chosen!r} must be distinct, non-empty, and "
                f"among the anomaly {what} {list(candidates)}"
            )
        return tuple(sorted(chosen, key=list(candidates).index))
    if not 1 <= n <= len(candidates):
        raise ValueError(f"n_seen must be between 1 and {len(candidates)}, got {n}")
    picked = rng.choice(len(candidates), size=n, replace=False)
    return tuple(candidates[i] for i in sorted(picked))


def _normal_digits(name: str, normal: Any) -> tuple[int, ...]:
    if normal is None:
        raise ValueError(f"{name!r} needs the normal digit(s), e.g. normal=[3]")
    digits = [normal] if isinstance(normal, int | np.integer) else list(normal)
    if any(
        isinstance(d, bool) or not isinstance(d, int | np.integer) or not 0 <= d <= 9
        for d in digits
    ) or len(set(digits)) != len(digits):
        raise ValueError(f"normal must list distinct digits 0-9, got {normal!r}")
    limit = 1 if name == "mnist-1vall" else 5
    if not 1 <= len(digits) <= limit:
        raise ValueError(f"{name!r} takes 1 to {limit} normal digit(s), got {len(digits)}")
    return tuple(sorted(int(d) for d in digits))


def _mnist_split(
    name: str, seed: int, opts: dict[str, Any], train: MNISTData, test: MNISTData
) -> Split:
    normal = _normal_digits(name, opts["normal"])
    opts["normal"] = list(normal)
    anomaly_digits = tuple(d for d in range(10) if d not in normal)
    rng = np.random.default_rng(seed)
    seen = _choose(rng, anomaly_digits, opts["seen_digits"], int(opts["n_seen"]), "digits")
    digits = np.r_[train.digits, test.digits].astype(np.int64)
    n_file = len(train)
    in_train_file = np.arange(digits.size) < n_file
    is_normal = np.isin(digits, normal)
    available = np.ones(digits.size, dtype=bool)
    idx = _draw_three(
        rng,
        available,
        is_normal,
        in_train_file & is_normal,
        in_train_file & np.isin(digits, seen),
        opts,
        "images",
    )
    names = np.array(["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"])

    def images(i: np.ndarray) -> np.ndarray:
        from_train = i < n_file
        out = np.empty((i.size, 28, 28), dtype=np.uint8)
        out[from_train] = train.images[i[from_train]]
        out[~from_train] = test.images[i[~from_train] - n_file]
        return (out.astype(np.float32) / np.float32(255.0)).reshape(i.size, 1, 28, 28)

    arrays = _part_arrays(
        idx, {p: images(i) for p, i in idx.items()}, is_normal, digits, names, n_file
    )
    return Split(
        name=name,
        seed=seed,
        options=opts,
        **arrays,
        seen=seen,
        unseen=tuple(d for d in anomaly_digits if d not in seen),
    )


def _part_arrays(
    idx: dict[str, np.ndarray],
    features: dict[str, Any],
    is_normal: np.ndarray,
    classes: np.ndarray,
    names: np.ndarray,
    n_first: int,
) -> dict[str, Any]:
    """The Split arrays of each part p in ``idx`` (row indices into the concatenation of
    the source files, the first holding ``n_first`` rows): X_p (given), y_p, c_p, and the
    provenance src_p (file name) and row_p (row within that file)."""
    arrays: dict[str, Any] = {}
    for p, i in idx.items():
        arrays[f"X_{p}"] = features[p]
        arrays[f"y_{p}"] = (~is_normal[i]).astype(np.int64)
        arrays[f"c_{p}"] = classes[i]
        arrays[f"src_{p}"] = names[(i >= n_first).astype(int)]
        arrays[f"row_{p}"] = np.where(i < n_first, i, i - n_first).astype(np.int64)
    return arrays


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


# ------------------------------------------------------------------ public API
def make_split_from(name: str, *, seed: int, train: Any, test: Any = None, **options: Any) -> Split:
    """:func:`make_split` on data already loaded.

    Parameters
    ----------
    name, seed, options
        As in :func:`make_split`.
    train, test
        For MNIST: ``load_mnist(subset="train")`` and ``load_mnist(subset="test")``. For
        KDD: the training file (``load_nsl_kdd()`` / ``load_kdd99()``) and, only with
        ``test_file="official"``, the official test file.
    """
    seed = _check_seed(seed)
    opts = _options(name, options)
    if name.startswith("mnist"):
        if not isinstance(train, MNISTData) or not isinstance(test, MNISTData):
            raise ValueError(f"{name!r} needs the MNIST train and test halves")
        split = _mnist_split(name, seed, opts, train, test)
    elif name == "kdd99-zenati":
        if not isinstance(train, KDDData):
            raise ValueError("kdd99-zenati needs load_kdd99(subset='train')")
        split = _zenati_split(seed, opts, train)
    else:
        if opts["test_file"] not in ("same", "official"):
            raise ValueError(f"test_file must be 'same' or 'official', got {opts['test_file']!r}")
        if not isinstance(train, KDDData) or train.dataset != name or train.subset != "train":
            raise ValueError(f"{name!r} needs its training file as train")
        if opts["test_file"] == "official" and (
            not isinstance(test, KDDData) or test.dataset != name or test.subset != "test"
        ):
            raise ValueError(f"{name!r} with test_file='official' needs its test file as test")
        split = _kdd_split(name, seed, opts, train, test)
    logger.info(
        "made split %s seed %d: train %d, val %d, test %d",
        name,
        seed,
        len(split.y_train),
        len(split.y_val),
        len(split.y_test),
    )
    return split


def make_split(
    name: str, *, seed: int, data_home: str | os.PathLike[str] | None = None, **options: Any
) -> Split:
    """Load a dataset and draw the paper's train / validation / test split.

    Parameters
    ----------
    name : {"mnist-1vall", "mnist-nvm", "nsl-kdd", "kdd99", "kdd99-zenati"}
    seed : int
        Fixes every random choice (``numpy.random.default_rng(seed)``).
    data_home : path, optional
        See :func:`anoean.datasets.get_data_home`.
    **options
        Per name (defaults in brackets); see ``docs/protocol.md``.

        - all but kdd99-zenati: ``n_train_normal`` [5000], ``train_anomaly_ratio`` [0.1],
          ``n_test`` [1700], ``test_anomaly_rate`` [0.2], ``n_val`` [1700; 500 for
          mnist-1vall].
        - mnist-1vall / mnist-nvm: ``normal`` (required: one digit, or 1-5 digits),
          ``n_seen`` [4] anomaly digits drawn by the seed for training, or ``seen_digits``
          to name them.
        - nsl-kdd / kdd99: ``seen_families`` [("DoS", "Probe")], or None to let the seed
          draw ``n_seen`` [2] families; ``test_file`` ["same"] or "official".
        - kdd99-zenati: ``train_fraction`` [0.5], ``val_fraction`` [0.1],
          ``test_anomaly_rate`` [0.2], ``scale`` [False].

    Returns
    -------
    Split

    Raises
    ------
    ValueError
        An unknown name or option, a bad value, or too few samples for the sizes asked.
    """
    seed = _check_seed(seed)
    opts = _options(name, options)
    train: MNISTData | KDDData
    test: MNISTData | KDDData | None = None
    if name.startswith("mnist"):
        train = load_mnist(data_home=data_home, subset="train")
        test = load_mnist(data_home=data_home, subset="test")
    elif name == "kdd99-zenati":
        train = load_kdd99(data_home=data_home, subset="train")
    else:
        loader = load_nsl_kdd if name == "nsl-kdd" else load_kdd99
        train = loader(data_home=data_home, subset="train")
        if opts.get("test_file") == "official":
            test = loader(data_home=data_home, subset="test")
    return make_split_from(name, seed=seed, train=train, test=test, **options)
