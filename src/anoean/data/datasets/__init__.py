"""The public datasets used by the paper: NSL-KDD, KDD Cup 99 and MNIST.

Files are looked up in a data home (see :func:`get_data_home`), each dataset in its own
sub-folder (``nsl-kdd/``, ``kddcup99/``, ``mnist/``), plain or gzip-compressed. A missing file
is downloaded from a public URL and verified against the SHA-256 recorded in this package.
"""

from anoean.data.datasets._download import (
    ChecksumError,
    DatasetNotFoundError,
    fetch,
    find_file,
    get_data_home,
    verify,
)
from anoean.data.datasets._registry import (
    ATTACK_FAMILIES,
    ATTACK_TO_FAMILY,
    FAMILIES,
    FILES,
    KDD_CATEGORICAL,
    KDD_COLUMNS,
    SUBSETS,
    RemoteFile,
)
from anoean.data.datasets.kdd import KDDData, attack_family, load_kdd99, load_nsl_kdd
from anoean.data.datasets.mnist import MNISTData, load_mnist

__all__ = [
    "ATTACK_FAMILIES",
    "ATTACK_TO_FAMILY",
    "FAMILIES",
    "FILES",
    "KDD_CATEGORICAL",
    "KDD_COLUMNS",
    "SUBSETS",
    "ChecksumError",
    "DatasetNotFoundError",
    "KDDData",
    "MNISTData",
    "RemoteFile",
    "attack_family",
    "fetch",
    "find_file",
    "get_data_home",
    "load_kdd99",
    "load_mnist",
    "load_nsl_kdd",
    "verify",
]
