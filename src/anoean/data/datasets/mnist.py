"""Loader for MNIST from its four IDX files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anoean.data.datasets._download import fetch
from anoean.data.datasets._io import read_bytes
from anoean.data.datasets._registry import SUBSETS

__all__ = ["MNISTData", "load_mnist", "parse_idx"]

_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


@dataclass(frozen=True, eq=False)
class MNISTData:
    """One half of MNIST.

    Attributes
    ----------
    subset : str
        ``"train"`` (60,000 images) or ``"test"`` (the 10,000 t10k images).
    images : numpy.ndarray of uint8, shape (n, 28, 28)
        Pixels 0 (background) to 255, as stored.
    digits : numpy.ndarray of uint8, shape (n,)
        The class label 0-9.
    paths : tuple of pathlib.Path
        The images and labels files read.
    """

    subset: str
    images: np.ndarray = field(repr=False)
    digits: np.ndarray = field(repr=False)
    paths: tuple[Path, Path]

    def __len__(self) -> int:
        return int(self.digits.shape[0])


def parse_idx(data: bytes, path: Path, magic: int) -> np.ndarray:
    """Decode an IDX file of unsigned bytes.

    Raises
    ------
    ValueError
        A wrong magic number or a size that does not match the header, naming the file.
    """
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"{path}: IDX magic number is {found:#010x}, expected {magic:#010x}; "
            "is this the right MNIST file?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header cut short ({len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(
            f"{path}: IDX header announces {dims} values ({expected} bytes in all) but the "
            f"file has {len(data)} bytes; it is truncated or damaged"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(
    *,
    data_home: str | os.PathLike[str] | None = None,
    subset: str = "train",
    download: bool = True,
    base_url: str | None = None,
) -> MNISTData:
    """Load MNIST from ``{data_home}/mnist/`` (the IDX files, plain or ``.gz``).

    Parameters
    ----------
    data_home : path, optional
        See :func:`anoean.data.datasets.get_data_home`.
    subset : {"train", "test"}
        ``train-*`` (60,000 images) or ``t10k-*`` (10,000 images).
    download : bool, default True
        Download missing files (verified against their SHA-256).
    base_url : str, optional
        A mirror laid out like the data home, used instead of the public URLs.

    Returns
    -------
    MNISTData

    Raises
    ------
    ValueError
        A damaged file (truncated gzip or IDX, wrong magic number, image and label counts
        that differ, a label above 9), naming the file.
    DatasetNotFoundError
        Files are missing and could not be downloaded.
    """
    if subset not in SUBSETS["mnist"]:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    images_name, labels_name = SUBSETS["mnist"][subset]
    paths = fetch([images_name, labels_name], data_home, download=download, base_url=base_url)
    ip, lp = paths[images_name], paths[labels_name]
    images = parse_idx(read_bytes(ip), ip, _IMAGES_MAGIC)
    digits = parse_idx(read_bytes(lp), lp, _LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{ip}: images are {images.shape[1:]}, expected (28, 28)")
    if images.shape[0] != digits.shape[0]:
        raise ValueError(f"{ip} has {images.shape[0]} images but {lp} has {digits.shape[0]} labels")
    if digits.size and digits.max() > 9:
        i = int(np.argmax(digits > 9))
        raise ValueError(f"{lp}: label {int(digits[i])} at index {i} is not a digit")
    return MNISTData(subset=subset, images=images, digits=digits, paths=(ip, lp))
