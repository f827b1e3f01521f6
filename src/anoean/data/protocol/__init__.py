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

:func:`make_split` and :func:`make_split_from` are here; the draws shared by every split are
in :mod:`~anoean.data.protocol.draws`, the MNIST and KDD splits in
:mod:`~anoean.data.protocol.mnist` and :mod:`~anoean.data.protocol.kdd`, and :class:`Split`
in :mod:`~anoean.data.protocol.split`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from anoean.data.datasets import (
    KDDData,
    MNISTData,
    load_kdd99,
    load_mnist,
    load_nsl_kdd,
)
from anoean.data.protocol.draws import NAMES, _check_seed, _options
from anoean.data.protocol.kdd import ZENATI_CATEGORICAL as ZENATI_CATEGORICAL
from anoean.data.protocol.kdd import _kdd_split, _zenati_split
from anoean.data.protocol.mnist import _mnist_split
from anoean.data.protocol.split import Split

__all__ = ["NAMES", "Split", "make_split", "make_split_from"]

logger = logging.getLogger(__name__)


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
        See :func:`anoean.data.datasets.get_data_home`.
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
