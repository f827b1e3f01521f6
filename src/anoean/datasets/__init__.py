"""The paper's public datasets (public path; they live in :mod:`anoean.data.datasets`)."""

from anoean.data.datasets import (  # noqa: F401
    ATTACK_FAMILIES,
    ATTACK_TO_FAMILY,
    FAMILIES,
    FILES,
    KDD_CATEGORICAL,
    KDD_COLUMNS,
    SUBSETS,
    ChecksumError,
    DatasetNotFoundError,
    KDDData,
    MNISTData,
    RemoteFile,
    attack_family,
    fetch,
    find_file,
    get_data_home,
    load_kdd99,
    load_mnist,
    load_nsl_kdd,
    verify,
)
from anoean.data.datasets import __all__ as __all__
