"""The :class:`Split` a protocol draw returns: the three parts' arrays with their provenance,
and its JSON summary and human-readable description."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anoean.data.datasets import attack_family
from anoean.data.preprocessing import TabularPreprocessor

_PARTS = ("train", "val", "test")


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
