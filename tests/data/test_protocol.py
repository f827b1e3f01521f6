"""Tests of anoean.data.protocol: sizes, composition, disjointness, determinism, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _data_helpers import MNIST_FILES, require_files

from anoean.data.datasets import attack_family, load_kdd99, load_mnist, load_nsl_kdd
from anoean.data.protocol import Split, make_split, make_split_from


@pytest.fixture(scope="module")
def mnist():
    root = require_files(*MNIST_FILES)
    return (
        load_mnist(data_home=root, subset="train", download=False),
        load_mnist(data_home=root, subset="test", download=False),
    )


@pytest.fixture(scope="module")
def nsl():
    root = require_files("nsl-kdd/KDDTrain+.txt.gz", "nsl-kdd/KDDTest+.txt.gz")
    return (
        load_nsl_kdd(data_home=root, subset="train", download=False),
        load_nsl_kdd(data_home=root, subset="test", download=False),
    )


@pytest.fixture(scope="module")
def kdd99():
    root = require_files("kddcup99/kddcup.data_10_percent.gz")
    return load_kdd99(data_home=root, subset="train", download=False)


def _keys(split: Split, part: str) -> np.ndarray:
    """One integer per sample: (source file, row) packed together."""
    _, _, _, src, row = split.part(part)
    files = {
        "train-images-idx3-ubyte": 0,
        "t10k-images-idx3-ubyte": 1,
        "KDDTrain+.txt": 2,
        "KDDTest+.txt": 3,
        "kddcup.data_10_percent": 4,
        "corrected": 5,
    }
    keys = np.array([files[s] for s in src], dtype=np.int64) * 10**7 + row
    assert np.unique(keys).size == keys.size, f"{part} holds a sample twice"
    return keys


def _pairs(split: Split, part: str) -> set[int]:
    return set(_keys(split, part).tolist())


def _assert_disjoint(split: Split) -> None:
    tr, va, te = (_keys(split, p) for p in ("train", "val", "test"))
    assert not np.intersect1d(tr, va).size and not np.intersect1d(tr, te).size
    assert not np.intersect1d(va, te).size


def _assert_same(a: Split, b: Split) -> None:
    for p in ("train", "val", "test"):
        for x, y in zip(a.part(p), b.part(p), strict=True):
            np.testing.assert_array_equal(x, y)


def _composition(split: Split, part: str, n: int, n_anomalous: int) -> None:
    X, y, c, src, row = split.part(part)
    assert len(X) == len(y) == len(c) == len(src) == len(row) == n
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert int(y.sum()) == n_anomalous and set(np.unique(y)) <= {0, 1}


# ---------------------------------------------------------------------- MNIST
def test_mnist_1vall_sizes_classes_and_provenance(mnist):
    train, test = mnist
    s = make_split_from("mnist-1vall", seed=7, train=train, test=test, normal=[3])
    _composition(s, "train", 5500, 500)
    _composition(s, "test", 1700, 340)
    _composition(s, "val", 500, 100)
    _assert_disjoint(s)
    assert s.X_train.shape[1:] == (1, 28, 28)
    assert 0.0 <= s.X_train.min() and s.X_train.max() <= 1.0 and s.X_train.max() == 1.0
    # labels follow the class, and only the normal digit is normal
    for p in ("train", "val", "test"):
        _, y, c, _, _ = s.part(p)
        np.testing.assert_array_equal(y, (c != 3).astype(int))
    # 4 seen anomaly digits, chosen by the seed; the other 5 never reach training
    assert len(s.seen) == 4 and len(s.unseen) == 5 and 3 not in s.seen + s.unseen
    assert set(s.c_train[s.y_train == 1]) == set(s.seen)
    assert not set(s.c_train) & set(s.unseen)
    # test anomalies come from all nine other digits
    assert set(s.c_test[s.y_test == 1]) == set(range(10)) - {3}
    # training comes from the official train file; pixels match the source rows
    assert set(s.src_train) == {"train-images-idx3-ubyte"}
    np.testing.assert_array_equal(s.X_train[:, 0] * 255, train.images[s.row_train])
    t10k = s.src_test == "t10k-images-idx3-ubyte"
    np.testing.assert_array_equal(s.X_test[t10k, 0] * 255, test.images[s.row_test[t10k]])
    np.testing.assert_array_equal(s.c_test[t10k], test.digits[s.row_test[t10k]])


def test_mnist_split_is_deterministic_and_depends_on_the_seed(mnist):
    train, test = mnist
    a = make_split_from("mnist-1vall", seed=11, train=train, test=test, normal=1)
    b = make_split_from("mnist-1vall", seed=11, train=train, test=test, normal=[1])
    _assert_same(a, b)
    c = make_split_from("mnist-1vall", seed=12, train=train, test=test, normal=1)
    assert _pairs(a, "train") != _pairs(c, "train")
    seen = {
        make_split_from(
            "mnist-1vall",
            seed=k,
            train=train,
            test=test,
            normal=1,
            n_train_normal=10,
            n_test=10,
            n_val=10,
        ).seen
        for k in range(8)
    }
    assert len(seen) > 1  # the seed chooses the seen digits


def test_mnist_nvm_union_of_normal_digits(mnist):
    train, test = mnist
    s = make_split_from(
        "mnist-nvm", seed=0, train=train, test=test, normal=[0, 4, 9], seen_digits=[1, 2]
    )
    _composition(s, "val", 1700, 340)
    _assert_disjoint(s)
    assert s.seen == (1, 2) and s.unseen == (3, 5, 6, 7, 8)
    assert set(s.c_train[s.y_train == 0]) == {0, 4, 9}
    assert set(s.c_train[s.y_train == 1]) == {1, 2}
    np.testing.assert_array_equal(s.y_test, ~np.isin(s.c_test, [0, 4, 9]))


def test_mnist_too_few_images_is_an_error_not_a_smaller_draw(mnist):
    train, test = mnist
    # digit 5 has 6,313 images; 5,000 for training leave fewer than the 1,360 test needs
    with pytest.raises(
        ValueError,
        match=r"cannot draw 1,360 normal images for the test set: "
        r"only 1,313 remain",
    ):
        make_split_from("mnist-1vall", seed=0, train=train, test=test, normal=5)
    s = make_split_from(
        "mnist-1vall", seed=0, train=train, test=test, normal=5, n_train_normal=4500
    )
    assert int((s.y_train == 0).sum()) == 4500 and int(s.y_train.sum()) == 450


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "normal digit"),
        ({"normal": [1, 2]}, "1 to 1 normal"),
        ({"normal": 10}, "distinct digits"),
        ({"normal": 1, "seen_digits": [1]}, r"seen digits \[1\] must be"),
        ({"normal": 1, "n_seen": 10}, "n_seen"),
        ({"normal": 1, "colour": "red"}, r"unknown option.*colour"),
        ({"normal": 1, "n_test": -1}, "non-negative"),
        ({"normal": 1, "test_anomaly_rate": 1.5}, r"within \[0, 1\]"),
    ],
)
def test_mnist_bad_options(mnist, kwargs, match):
    train, test = mnist
    with pytest.raises(ValueError, match=match):
        make_split_from("mnist-1vall", seed=0, train=train, test=test, **kwargs)


# ------------------------------------------------------------------------ KDD
def test_nsl_kdd_paper_setting(nsl):
    train, _ = nsl
    s = make_split_from("nsl-kdd", seed=3, train=train)
    _composition(s, "train", 5500, 500)
    _composition(s, "val", 1700, 340)
    _composition(s, "test", 1700, 340)
    _assert_disjoint(s)
    assert s.seen == ("DoS", "Probe") and s.unseen == ("R2L", "U2R")
    for p in ("train", "val", "test"):
        _, y, c, src, row = s.part(p)
        np.testing.assert_array_equal(y, (c != "normal").astype(int))
        np.testing.assert_array_equal(c, train.attack[row])
        assert set(src) == {"KDDTrain+.txt"}
    assert set(attack_family(s.c_train[s.y_train == 1])) <= {"DoS", "Probe"}
    # the preprocessor saw the training part only: its ranges are the training ranges
    pre = s.preprocessor
    table = train.features.take(s.row_train)
    j = pre.numeric_columns_.index("src_bytes")
    assert pre.data_max_[j] == max(table.column("src_bytes").to_pylist())
    assert pre.categories_["service"] == sorted(set(table.column("service").to_pylist()))
    assert s.X_train.min() == 0.0 and s.X_train.max() == 1.0
    assert s.feature_names == pre.feature_names_out_ and s.X_test.shape[1] == len(s.feature_names)
    _assert_same(s, make_split_from("nsl-kdd", seed=3, train=train))


def test_kdd_seen_families_by_seed_or_by_name(nsl):
    train, _ = nsl
    picks = set()
    for seed in range(6):
        s = make_split_from(
            "nsl-kdd",
            seed=seed,
            train=train,
            seen_families=None,
            n_train_normal=100,
            n_test=50,
            n_val=50,
        )
        assert len(s.seen) == 2
        assert set(attack_family(s.c_train[s.y_train == 1])) <= set(s.seen)
        picks.add(s.seen)
    assert len(picks) > 1
    s = make_split_from("nsl-kdd", seed=0, train=train, seen_families=["R2L"], n_train_normal=1000)
    assert set(attack_family(s.c_train[s.y_train == 1])) == {"R2L"}
    with pytest.raises(ValueError, match=r"seen families \['Worms'\]"):
        make_split_from("nsl-kdd", seed=0, train=train, seen_families=["Worms"])
    # U2R has 52 rows in KDDTrain+: asking for 500 is refused
    with pytest.raises(ValueError, match=r"cannot draw 500 seen anomalous rows.*only 52"):
        make_split_from("nsl-kdd", seed=0, train=train, seen_families=["U2R"])


def test_nsl_kdd_official_test_file(nsl):
    train, test = nsl
    s = make_split_from("nsl-kdd", seed=0, train=train, test=test, test_file="official")
    _composition(s, "test", 1700, 340)
    _assert_disjoint(s)
    assert set(s.src_test) == {"KDDTest+.txt"}
    assert set(s.src_train) == set(s.src_val) == {"KDDTrain+.txt"}
    np.testing.assert_array_equal(s.c_test, test.attack[s.row_test])
    # the shifted setting: attack types that the training file does not have at all
    assert set(s.c_test) - set(train.attack)
    with pytest.raises(ValueError, match="official"):
        make_split_from("nsl-kdd", seed=0, train=train, test_file="official")
    with pytest.raises(ValueError, match="test_file"):
        make_split_from("nsl-kdd", seed=0, train=train, test_file="other")


def test_kdd99_paper_setting(kdd99):
    s = make_split_from("kdd99", seed=0, train=kdd99)
    _composition(s, "train", 5500, 500)
    _composition(s, "test", 1700, 340)
    _assert_disjoint(s)
    assert set(s.src_test) == {"kddcup.data_10_percent"}
    assert set(attack_family(s.c_train[s.y_train == 1])) <= {"DoS", "Probe"}


def test_kdd99_zenati_convention(kdd99):
    s = make_split_from("kdd99-zenati", seed=0, train=kdd99)
    assert s.X_train.shape[1] == 121 and len(s.feature_names) == 121
    assert s.feature_names[34:37] == [
        "protocol_type=icmp",
        "protocol_type=tcp",
        "protocol_type=udp",
    ]
    # anomalies are the normal traffic; training is attacks only
    for p in ("train", "val", "test"):
        _, y, c, _, _ = s.part(p)
        np.testing.assert_array_equal(y, (c == "normal").astype(int))
    assert s.y_train.sum() == 0
    _assert_disjoint(s)
    n = len(kdd99)
    half = int(round(n / 2))
    # the test half is every row left after the training half: its attacks, plus normal
    # traffic up to 20% (all of it here: ALAD's cap)
    assert len(s.y_test) == n - half
    assert 0.19 < s.y_test.mean() <= 0.2
    assert abs(s.y_val.mean() - 0.2) < 0.001
    assert any("only" in note for note in s.notes)
    assert s.X_train.max() > 1  # unscaled, as in their code
    scaled = make_split_from("kdd99-zenati", seed=0, train=kdd99, scale=True)
    assert scaled.X_train.min() == 0.0 and scaled.X_train.max() == 1.0
    np.testing.assert_array_equal(scaled.row_test, s.row_test)


# ----------------------------------------------------------------- reporting
def test_describe_and_to_dict(nsl):
    train, _ = nsl
    s = make_split_from("nsl-kdd", seed=0, train=train)
    d = s.to_dict()
    json.dumps(d)
    assert d["parts"]["train"] == {
        "n": 5500,
        "n_normal": 5000,
        "n_anomalous": 500,
        "by_source": {
            "KDDTrain+.txt": {
                k: int(v) for k, v in zip(*np.unique(s.c_train, return_counts=True), strict=True)
            }
        },
    }
    assert d["seen"] == ["DoS", "Probe"] and d["options"]["n_test"] == 1700
    text = s.describe()
    assert "train: 5,500 rows = 5,000 normal + 500 anomalous" in text
    assert "test: 1,700 rows = 1,360 normal + 340 anomalous" in text
    assert "from KDDTrain+.txt" in text and "kept out of training: R2L, U2R" in text


def test_make_split_loads_from_data_home(nsl):
    root = require_files("nsl-kdd/KDDTrain+.txt.gz")
    train, _ = nsl
    _assert_same(
        make_split("nsl-kdd", seed=5, data_home=root),
        make_split_from("nsl-kdd", seed=5, train=train),
    )
    with pytest.raises(ValueError, match="unknown split name"):
        make_split("cifar", seed=0, data_home=root)
    with pytest.raises(ValueError, match="seed"):
        make_split("nsl-kdd", seed=-1, data_home=root)
