"""The MNIST splits (``mnist-1vall``, ``mnist-nvm``): normal digits against the others."""

from __future__ import annotations

from typing import Any

import numpy as np

from anoean.data.datasets import MNISTData
from anoean.data.protocol.draws import _choose, _draw_three, _part_arrays
from anoean.data.protocol.split import Split


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
