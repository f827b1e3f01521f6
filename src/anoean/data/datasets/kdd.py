"""Loaders for NSL-KDD (KDDTrain+ / KDDTest+) and KDD Cup 99 (10% / corrected)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.datasets._download import fetch
from anoean.data.datasets._io import read_bytes, read_csv, row_to_line
from anoean.data.datasets._registry import (
    ATTACK_TO_FAMILY,
    KDD_CATEGORICAL,
    KDD_COLUMNS,
    KDD_FLOAT_COLUMNS,
    SUBSETS,
)

__all__ = ["KDDData", "attack_family", "load_kdd99", "load_nsl_kdd"]


@dataclass(frozen=True, eq=False)
class KDDData:
    """One KDD file: its 41 raw features and its labels.

    Attributes
    ----------
    dataset : str
        ``"nsl-kdd"`` or ``"kdd99"``.
    subset : str
        ``"train"`` or ``"test"``.
    path : pathlib.Path
        The file read.
    features : pyarrow.Table
        The 41 features named as in ``kddcup.names`` (see ``KDD_COLUMNS``): three string
        columns (``protocol_type``, ``service``, ``flag``), float64 rates, int64 counts.
    attack : numpy.ndarray of str
        The original label: ``"normal"`` or the attack name (KDD Cup 99's trailing dot is
        stripped, so both datasets use the same names).
    family : numpy.ndarray of str
        ``"normal"``, ``"DoS"``, ``"Probe"``, ``"R2L"`` or ``"U2R"``.
    difficulty : numpy.ndarray of int or None
        NSL-KDD's difficulty level (the last field, 0 to 21); None for KDD Cup 99.
    """

    dataset: str
    subset: str
    path: Path
    features: pa.Table = field(repr=False)
    attack: np.ndarray = field(repr=False)
    family: np.ndarray = field(repr=False)
    difficulty: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.features.num_rows

    @property
    def is_attack(self) -> np.ndarray:
        """Boolean array: True for every row that is not normal traffic."""
        return self.attack != "normal"


def attack_family(attacks: np.ndarray | list[str]) -> np.ndarray:
    """Map attack names (trailing dot allowed) to their family.

    Raises
    ------
    ValueError
        For a name outside the taxonomy.
    """
    arr = np.asarray(attacks, dtype=str)
    uniq, inv = np.unique(arr, return_inverse=True)
    fam = []
    for name in map(str, uniq):
        key = name[:-1] if name.endswith(".") else name
        if key not in ATTACK_TO_FAMILY:
            raise ValueError(f"unknown attack name {name!r}; known: {sorted(ATTACK_TO_FAMILY)}")
        fam.append(ATTACK_TO_FAMILY[key])
    return np.asarray(fam, dtype=str)[inv.reshape(arr.shape)] if fam else arr.copy()


def _column_types(label_columns: tuple[str, ...]) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {}
    for c in KDD_COLUMNS:
        if c in KDD_CATEGORICAL:
            types[c] = pa.string()
        elif c in KDD_FLOAT_COLUMNS:
            types[c] = pa.float64()
        else:
            types[c] = pa.int64()
    types["label"] = pa.string()
    if "difficulty" in label_columns:
        types["difficulty"] = pa.int64()
    return types


def _labels(
    table: pa.Table, data: bytes, path: Path, strip_dot: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Attack names and families, vectorised through the (small) set of distinct labels."""
    enc = pc.dictionary_encode(table.column("label")).combine_chunks()
    names = enc.dictionary.to_pylist()
    attacks, families = [], []
    for i, raw in enumerate(names):
        name = raw[:-1] if strip_dot and raw.endswith(".") else raw
        if name not in ATTACK_TO_FAMILY:
            row = int(np.flatnonzero(enc.indices.to_numpy(zero_copy_only=False) == i)[0])
            raise ValueError(
                f"{path}, line {row_to_line(data, row)}, column {len(KDD_COLUMNS) + 1} (label)"
                f": unknown attack name {raw!r}; the known names are "
                f"{sorted(ATTACK_TO_FAMILY)}"
            )
        attacks.append(name)
        families.append(ATTACK_TO_FAMILY[name])
    idx = enc.indices.to_numpy(zero_copy_only=False)
    return np.asarray(attacks, dtype=str)[idx], np.asarray(families, dtype=str)[idx]


def _load(
    dataset: str,
    subset: str,
    data_home: str | os.PathLike[str] | None,
    download: bool,
    base_url: str | None,
) -> KDDData:
    if subset not in SUBSETS[dataset]:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    (name,) = SUBSETS[dataset][subset]
    path = fetch([name], data_home, download=download, base_url=base_url)[name]
    label_columns = ("label", "difficulty") if dataset == "nsl-kdd" else ("label",)
    names = (*KDD_COLUMNS, *label_columns)
    data = read_bytes(path)
    table = read_csv(data, path, names, _column_types(label_columns))
    attack, family = _labels(table, data, path, strip_dot=dataset == "kdd99")
    difficulty = table.column("difficulty").to_numpy() if "difficulty" in label_columns else None
    return KDDData(
        dataset=dataset,
        subset=subset,
        path=path,
        features=table.select(list(KDD_COLUMNS)),
        attack=attack,
        family=family,
        difficulty=difficulty,
    )


def load_nsl_kdd(
    *,
    data_home: str | os.PathLike[str] | None = None,
    subset: str = "train",
    download: bool = True,
    base_url: str | None = None,
) -> KDDData:
    """Load NSL-KDD: ``KDDTrain+.txt`` (``subset="train"``) or ``KDDTest+.txt`` (``"test"``).

    Parameters
    ----------
    data_home : path, optional
        See :func:`anoean.data.datasets.get_data_home`. The file is read from
        ``{data_home}/nsl-kdd/``, plain or as ``.gz``.
    subset : {"train", "test"}
    download : bool, default True
        Download the file if it is missing (verified against its SHA-256).
    base_url : str, optional
        A mirror laid out like the data home, used instead of the public URLs.

    Returns
    -------
    KDDData
        125,973 rows (67,343 normal) for train; 22,544 (9,711 normal) for test.

    Raises
    ------
    ValueError
        A truncated gzip, a row with the wrong number of fields, a non-numeric value in a
        numeric column or an unknown attack name, naming the file and the line.
    DatasetNotFoundError
        The file is missing and could not be downloaded.
    """
    return _load("nsl-kdd", subset, data_home, download, base_url)


def load_kdd99(
    *,
    data_home: str | os.PathLike[str] | None = None,
    subset: str = "train",
    download: bool = True,
    base_url: str | None = None,
) -> KDDData:
    """Load KDD Cup 99: ``kddcup.data_10_percent`` (``"train"``) or ``corrected`` (``"test"``).

    Same parameters, return type and errors as :func:`load_nsl_kdd`; the files are read from
    ``{data_home}/kddcup99/``. Train has 494,021 rows (97,278 normal); test has 311,029
    (60,593 normal).
    """
    return _load("kdd99", subset, data_home, download, base_url)
