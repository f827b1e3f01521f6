"""Facts about the datasets: column names, the attack taxonomy, files, checksums, URLs.

Checksums are copied from ``shared/datasets/*/SHA256SUMS`` (the files as distributed,
gzip-compressed) and ``shared/datasets/SOURCES.md`` (the uncompressed content). A file is
accepted when either matches: a mirror may serve the plain file, or a gzip whose header
(time stamp, name) differs while its content is identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

# --------------------------------------------------------------------------- KDD columns
#: The 41 features, named and ordered as in the KDD Cup 99 ``kddcup.names`` file (NSL-KDD's
#: ARFF headers use the same names in the same order).
KDD_COLUMNS: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)

#: The three text columns (``symbolic`` in ``kddcup.names``), one-hot encoded by the protocol.
#: ``land``, ``logged_in``, ``is_host_login`` and ``is_guest_login`` are also declared
#: symbolic there, but they are 0/1 flags and are read as integers.
KDD_CATEGORICAL: tuple[str, ...] = ("protocol_type", "service", "flag")

#: Columns holding rates (two decimals in the files); read as float64. Every other numeric
#: column holds whole numbers in all four files and is read as int64.
KDD_FLOAT_COLUMNS: frozenset[str] = frozenset(c for c in KDD_COLUMNS if c.endswith("_rate"))

# ------------------------------------------------------------------ attack taxonomy
FAMILIES: tuple[str, ...] = ("normal", "DoS", "Probe", "R2L", "U2R")
ATTACK_FAMILIES: tuple[str, ...] = FAMILIES[1:]

_TAXONOMY: dict[str, tuple[str, ...]] = {
    "normal": ("normal",),
    # the 22 training attacks follow kddcup99/training_attack_types exactly; the others
    # appear only in KDDTest+ / corrected
    "DoS": (
        "back",
        "land",
        "neptune",
        "pod",
        "smurf",
        "teardrop",
        "apache2",
        "mailbomb",
        "processtable",
        "udpstorm",
    ),
    "Probe": ("ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"),
    "R2L": (
        "ftp_write",
        "guess_passwd",
        "imap",
        "multihop",
        "phf",
        "spy",
        "warezclient",
        "warezmaster",
        "named",
        "sendmail",
        "snmpgetattack",
        "snmpguess",
        "worm",
        "xlock",
        "xsnoop",
    ),
    # httptunnel: U2R here, as in the attack.types file shipped with common NSL-KDD copies;
    # some DARPA-1999-based lists put it in R2L (see docs/protocol.md)
    "U2R": (
        "buffer_overflow",
        "loadmodule",
        "perl",
        "rootkit",
        "httptunnel",
        "ps",
        "sqlattack",
        "xterm",
    ),
}

#: attack name (without KDD Cup 99's trailing dot) -> family
ATTACK_TO_FAMILY: MappingProxyType[str, str] = MappingProxyType(
    {attack: family for family, attacks in _TAXONOMY.items() for attack in attacks}
)


# ---------------------------------------------------------------------------- files
@dataclass(frozen=True)
class RemoteFile:
    """One data file: where it lives in the data home and how to check and fetch it.

    Attributes
    ----------
    folder : str
        Sub-folder of the data home (``nsl-kdd``, ``kddcup99``, ``mnist``).
    name : str
        File name without ``.gz``; the loader accepts ``name`` or ``name.gz``.
    sha256_gz : str
        SHA-256 of the gzip file as kept in the shared datasets folder.
    sha256_raw : str
        SHA-256 of the uncompressed content.
    urls : tuple of str
        Public URLs, tried in order (plain or gzip; either is verified).
    """

    folder: str
    name: str
    sha256_gz: str
    sha256_raw: str
    urls: tuple[str, ...]


_NSL_MIRRORS = (
    # public GitHub copies whose git blob ids equal the official archive's files
    # (provenance in shared/datasets/SOURCES.md); pinned to a commit so they cannot drift
    "https://raw.githubusercontent.com/lee191/AI_IDS/"
    "10d94bb5fe7e6a6b8db655609e8a604d49c61d05/NSL-KDD/",
    "https://raw.githubusercontent.com/KostasEreksonas/IDS_test/"
    "71d797e1182ab2907ebafe3878f030a0e5731779/data/NSL_KDD/",
)
_KDD99_BASE = "http://kdd.ics.uci.edu/databases/kddcup99/"
_MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)


def _nsl(name: str, gz: str, raw: str) -> RemoteFile:
    quoted = name.replace("+", "%2B")
    return RemoteFile("nsl-kdd", name, gz, raw, tuple(m + quoted for m in _NSL_MIRRORS))


def _kdd99(name: str, gz: str, raw: str) -> RemoteFile:
    return RemoteFile("kddcup99", name, gz, raw, (f"{_KDD99_BASE}{name}.gz",))


def _mnist(name: str, gz: str, raw: str) -> RemoteFile:
    return RemoteFile("mnist", name, gz, raw, tuple(f"{m}{name}.gz" for m in _MNIST_MIRRORS))


FILES: MappingProxyType[str, RemoteFile] = MappingProxyType(
    {
        f.name: f
        for f in (
            _nsl(
                "KDDTrain+.txt",
                "39e78eaceffb1a183af002b4994b100b69795895bfbf67cfc62dabd4c9b76d4e",
                "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95",
            ),
            _nsl(
                "KDDTest+.txt",
                "1ebe1079af669e3c35ef7be25b5bafde1e47951244d1b4834682b14a22238da1",
                "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84",
            ),
            _kdd99(
                "kddcup.data_10_percent",
                "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
                "f8c8267ebcd9c0ed1fd7d6277fe5bfff8732e9b7db8e61b873542b2a534b6f9a",
            ),
            _kdd99(
                "corrected",
                "abd8165508378859b07e38537271f0ebf8a4d7319f643188cd7361e939a05c43",
                "547dfb9c0f0dc1d9944219ec79e851191faebaeb8acbfa1cd171c418397052a4",
            ),
            _mnist(
                "train-images-idx3-ubyte",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            _mnist(
                "train-labels-idx1-ubyte",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            _mnist(
                "t10k-images-idx3-ubyte",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            _mnist(
                "t10k-labels-idx1-ubyte",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        )
    }
)

#: dataset -> subset -> the file names it needs
SUBSETS: MappingProxyType[str, dict[str, tuple[str, ...]]] = MappingProxyType(
    {
        "nsl-kdd": {"train": ("KDDTrain+.txt",), "test": ("KDDTest+.txt",)},
        "kdd99": {"train": ("kddcup.data_10_percent",), "test": ("corrected",)},
        "mnist": {
            "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        },
    }
)
