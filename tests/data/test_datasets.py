"""Tests of anoean.data.datasets: real-file figures, the downloader, and parse errors."""

from __future__ import annotations

import gzip
import hashlib
import socket
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from _data_helpers import KDD99_LINE, MNIST_FILES, NSL_LINE, require_files, serve

from anoean.data.datasets import (
    ATTACK_TO_FAMILY,
    FILES,
    KDD_COLUMNS,
    ChecksumError,
    DatasetNotFoundError,
    attack_family,
    fetch,
    get_data_home,
    load_kdd99,
    load_mnist,
    load_nsl_kdd,
    verify,
)
from anoean.data.preprocessing import TabularPreprocessor

KDD_CAT = ["protocol_type", "service", "flag"]


# ----------------------------------------------------------------- real files
def test_nsl_kdd_known_figures():
    root = require_files("nsl-kdd/KDDTrain+.txt.gz", "nsl-kdd/KDDTest+.txt.gz")
    train = load_nsl_kdd(data_home=root, subset="train", download=False)
    test = load_nsl_kdd(data_home=root, subset="test", download=False)
    assert (len(train), int((train.attack == "normal").sum())) == (125_973, 67_343)
    assert (len(test), int((test.attack == "normal").sum())) == (22_544, 9_711)
    assert train.features.column_names == list(KDD_COLUMNS) and len(KDD_COLUMNS) == 41
    assert train.features.schema.field("service").type == pa.string()
    assert train.features.schema.field("src_bytes").type == pa.int64()
    assert train.features.schema.field("serror_rate").type == pa.float64()
    assert len(np.unique(train.attack)) == 23 and len(np.unique(test.attack)) == 38
    assert train.difficulty.min() == 0 and train.difficulty.max() == 21
    np.testing.assert_array_equal(train.family == "normal", ~train.is_attack)
    fam, counts = np.unique(train.family, return_counts=True)
    assert dict(zip(fam, counts, strict=True)) == {
        "normal": 67_343,
        "DoS": 45_927,
        "Probe": 11_656,
        "R2L": 995,
        "U2R": 52,
    }


def test_kdd99_known_figures():
    root = require_files("kddcup99/kddcup.data_10_percent.gz", "kddcup99/corrected.gz")
    train = load_kdd99(data_home=root, download=False)
    assert (len(train), int((train.attack == "normal").sum())) == (494_021, 97_278)
    assert int((train.attack == "smurf").sum()) == 280_790  # dots stripped: "smurf."
    assert not any(a.endswith(".") for a in np.unique(train.attack))
    assert train.difficulty is None
    test = load_kdd99(data_home=root, subset="test", download=False)
    assert (len(test), int((test.attack == "normal").sum())) == (311_029, 60_593)
    # 17 attack types appear only in the test file; all of them have a family
    unseen = set(np.unique(test.attack)) - set(np.unique(train.attack))
    assert len(unseen) == 17 and unseen <= set(ATTACK_TO_FAMILY)


def test_mnist_known_figures():
    root = require_files(*MNIST_FILES)
    train = load_mnist(data_home=root, subset="train", download=False)
    test = load_mnist(data_home=root, subset="test", download=False)
    assert train.images.shape == (60_000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10_000, 28, 28)
    assert np.bincount(train.digits).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(test.digits).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert train.images.max() == 255


def test_checksums_in_code_match_the_shared_sha256sums():
    root = require_files("nsl-kdd/SHA256SUMS", "kddcup99/SHA256SUMS", "mnist/SHA256SUMS")
    recorded = {}
    for folder in ("nsl-kdd", "kddcup99", "mnist"):
        for line in (root / folder / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split()
            recorded[name] = digest
    for spec in FILES.values():
        assert recorded[f"{spec.name}.gz"] == spec.sha256_gz, spec.name
    verify(FILES, root)  # and the files there have those checksums


def test_kdd99_load_and_preprocess_is_fast():
    root = require_files("kddcup99/kddcup.data_10_percent.gz")
    t0 = time.perf_counter()
    data = load_kdd99(data_home=root, download=False)
    X = TabularPreprocessor(categorical=KDD_CAT).fit_transform(data.features)
    elapsed = time.perf_counter() - t0
    assert X.shape == (494_021, 38 + 3 + 66 + 11) and X.dtype == np.float32
    assert np.isfinite(X).all() and X.min() == 0.0 and X.max() == 1.0
    # the target is < 5 s (see benchmarks/bench_load.py); a loose bound here catches
    # a per-row Python loop without failing on a busy machine
    assert elapsed < 20, f"load + preprocess took {elapsed:.1f} s"


def test_attack_family_mapping():
    np.testing.assert_array_equal(
        attack_family(["normal", "smurf.", "satan", "guess_passwd", "rootkit", "mscan"]),
        ["normal", "DoS", "Probe", "R2L", "U2R", "Probe"],
    )
    with pytest.raises(ValueError, match="unknown attack name 'ping'"):
        attack_family(["normal", "ping"])


# ------------------------------------------------------------------ data home
def test_data_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ANOEAN_DATA", str(tmp_path / "env"))
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home() == tmp_path / "env"
    monkeypatch.delenv("ANOEAN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert get_data_home() == tmp_path / "cache" / "anoean"


# ----------------------------------------------------------------- downloader
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_from_local_mirror_verifies_and_loads(tmp_path):
    root = require_files("nsl-kdd/KDDTest+.txt.gz", "mnist/t10k-labels-idx1-ubyte.gz")
    home = tmp_path / "home"
    with serve(root) as url:
        paths = fetch(["t10k-labels-idx1-ubyte"], home, base_url=url)
        test = load_nsl_kdd(data_home=home, subset="test", base_url=url)
    got = paths["t10k-labels-idx1-ubyte"]
    assert got == home / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert _sha(got) == FILES["t10k-labels-idx1-ubyte"].sha256_gz
    assert len(test) == 22_544 and test.path == home / "nsl-kdd" / "KDDTest+.txt.gz"
    assert _leftovers(home) == ["KDDTest+.txt.gz", "mnist", "nsl-kdd", "t10k-labels-idx1-ubyte.gz"]
    # present now: no server needed any more
    assert len(load_nsl_kdd(data_home=home, subset="test", download=False)) == 22_544


def test_download_of_plain_file_is_checked_against_uncompressed_sha(tmp_path):
    root = require_files("nsl-kdd/KDDTest+.txt.gz")
    mirror = tmp_path / "mirror" / "nsl-kdd"
    mirror.mkdir(parents=True)
    (mirror / "KDDTest+.txt").write_bytes(
        gzip.decompress((root / "nsl-kdd/KDDTest+.txt.gz").read_bytes())
    )
    home = tmp_path / "home"
    with serve(tmp_path / "mirror") as url:
        data = load_nsl_kdd(data_home=home, subset="test", base_url=url)
    assert data.path == home / "nsl-kdd" / "KDDTest+.txt"  # kept as served: plain
    assert _sha(data.path) == FILES["KDDTest+.txt"].sha256_raw
    assert len(data) == 22_544


def test_corrupted_download_raises_and_leaves_nothing(tmp_path):
    root = require_files("mnist/t10k-labels-idx1-ubyte.gz")
    real = (root / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = real[:-10] + b"0123456789"
    home = tmp_path / "home"
    with serve(root, corrupt={"/mnist/t10k-labels-idx1-ubyte.gz": bad}) as url:
        with pytest.raises(ChecksumError) as info:
            fetch(["t10k-labels-idx1-ubyte"], home, base_url=url)
    msg = str(info.value)
    assert "checksum mismatch for t10k-labels-idx1-ubyte" in msg
    assert hashlib.sha256(bad).hexdigest() in msg
    assert FILES["t10k-labels-idx1-ubyte"].sha256_gz in msg
    assert "nothing was written" in msg
    assert not (home / "mnist").exists()


def test_interrupted_download_leaves_nothing(tmp_path):
    root = require_files("mnist/t10k-labels-idx1-ubyte.gz")
    home = tmp_path / "home"
    with serve(root, cut={"/mnist/t10k-labels-idx1-ubyte.gz": 1000}) as url:
        with pytest.raises(DatasetNotFoundError, match="incomplete download: 1000 of"):
            fetch(["t10k-labels-idx1-ubyte"], home, base_url=url)
    assert not (home / "mnist").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_error_lists_files_folder_and_urls(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(data_home=tmp_path, subset="test", base_url=url, download=True)
    msg = str(info.value)
    assert "2 data file(s) could not be downloaded" in msg
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert f"{name} (or {name}.gz) belongs in {tmp_path / 'mnist'}" in msg
        assert f"{url}/mnist/{name}.gz" in msg
    assert not (tmp_path / "mnist").exists()
    with pytest.raises(DatasetNotFoundError) as info:
        load_nsl_kdd(data_home=tmp_path, download=False)
    msg = str(info.value)
    assert "missing (download=False)" in msg and str(tmp_path / "nsl-kdd") in msg
    assert "https://raw.githubusercontent.com/" in msg and "KDDTrain%2B.txt" in msg


# --------------------------------------------------------------- parse errors
def _write_nsl(home: Path, lines: list[str], *, gz: bool = False) -> Path:
    folder = home / "nsl-kdd"
    folder.mkdir(parents=True, exist_ok=True)
    body = ("\n".join(lines) + "\n").encode()
    path = folder / ("KDDTrain+.txt.gz" if gz else "KDDTrain+.txt")
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def test_small_file_parses_and_types_are_right(tmp_path):
    _write_nsl(tmp_path, [NSL_LINE] * 3, gz=True)
    d = load_nsl_kdd(data_home=tmp_path, download=False)
    assert len(d) == 3 and d.attack.tolist() == ["normal"] * 3
    assert d.features.column("src_bytes").to_pylist() == [491] * 3
    assert d.features.column("dst_host_srv_rerror_rate").to_pylist() == [0.0] * 3


def test_truncated_gzip_names_file_and_line(tmp_path):
    many = [NSL_LINE.replace(",491,", f",{i},") for i in range(2000)]
    path = _write_nsl(tmp_path, many, gz=True)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(
        ValueError,
        match=r"KDDTrain\+\.txt\.gz: truncated gzip file: the data "
        r"stops in line \d+",
    ):
        load_nsl_kdd(data_home=tmp_path, download=False)


def test_corrupt_gzip_names_the_file(tmp_path):
    many = [NSL_LINE.replace(",491,", f",{i},") for i in range(2000)]
    path = _write_nsl(tmp_path, many, gz=True)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"KDDTrain\+\.txt\.gz: corrupt gzip data .* in line \d+"):
        load_nsl_kdd(data_home=tmp_path, download=False)


def test_wrong_number_of_fields_names_file_and_line(tmp_path):
    short = NSL_LINE.rsplit(",", 1)[0]  # difficulty missing
    _write_nsl(tmp_path, [NSL_LINE, NSL_LINE, short, NSL_LINE])
    with pytest.raises(
        ValueError,
        match=r"KDDTrain\+\.txt, line 3: expected 43 "
        r"comma-separated fields, found 42",
    ):
        load_nsl_kdd(data_home=tmp_path, download=False)


def test_non_numeric_value_names_file_line_and_column(tmp_path):
    bad = NSL_LINE.replace(",491,", ",4x1,")
    _write_nsl(tmp_path, [NSL_LINE, "", bad, NSL_LINE])  # a blank line still counts
    with pytest.raises(
        ValueError,
        match=r"KDDTrain\+\.txt, line 3, column 5 \(src_bytes\): "
        r"expected a whole number, found '4x1'",
    ):
        load_nsl_kdd(data_home=tmp_path, download=False)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            ",0.17,0.03,",
            ",0.17,abc,",
            r"line 2, column 35 \(dst_host_diff_srv_rate\): expected a "
            r"number, found 'abc'",
        ),
        (",0.17,0.03,", ",0.17,,", r"line 2, column 35 .*found ''"),
        (
            ",0.17,0.03,",
            ",0.17,nan,",
            r"line 2, column 35 .*'nan' is not a finite number"
            r"|line 2, column 35 .*nan.*not a finite number",
        ),
        (",normal,20", ",ping,20", r"line 2, column 42 \(label\): unknown attack name 'ping'"),
    ],
)
def test_bad_values_name_file_line_and_column(tmp_path, old, new, match):
    _write_nsl(tmp_path, [NSL_LINE, NSL_LINE.replace(old, new)])
    with pytest.raises(ValueError, match=r"KDDTrain\+\.txt, " + match):
        load_nsl_kdd(data_home=tmp_path, download=False)


def test_kdd99_labels_lose_their_trailing_dot(tmp_path):
    folder = tmp_path / "kddcup99"
    folder.mkdir()
    (folder / "corrected").write_text(
        KDD99_LINE + "\n" + KDD99_LINE.replace("smurf.", "normal.") + "\n"
    )
    d = load_kdd99(data_home=tmp_path, subset="test", download=False)
    assert d.attack.tolist() == ["smurf", "normal"] and d.family.tolist() == ["DoS", "normal"]


def test_damaged_mnist_files_name_the_file(tmp_path):
    root = require_files("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = gzip.decompress((root / "mnist/t10k-images-idx3-ubyte.gz").read_bytes())
    labels = (root / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)
    (folder / "t10k-images-idx3-ubyte").write_bytes(images[:-784])  # one image short
    with pytest.raises(
        ValueError,
        match=r"t10k-images-idx3-ubyte: IDX header announces "
        r"\(10000, 28, 28\).*truncated",
    ):
        load_mnist(data_home=tmp_path, subset="test", download=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(labels)  # wrong file entirely
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        load_mnist(data_home=tmp_path, subset="test", download=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(images)
    assert len(load_mnist(data_home=tmp_path, subset="test", download=False)) == 10_000


def test_bad_subset_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="subset"):
        load_nsl_kdd(data_home=tmp_path, subset="validation")
