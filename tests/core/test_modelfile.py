"""Model directories: saving never loses data, files follow the umask, and any damage to a
model directory is refused with a ModelFileError naming the file (hypothesis fuzzing)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from _cli_helpers import blobs, small_anoean
from hypothesis import event, given
from hypothesis import strategies as st

from anoean import load
from anoean.core.modelfile import (
    CONFIG_FILE,
    DIGEST_KEY,
    WEIGHTS_FILE,
    ModelFileError,
    check_model_destination,
    is_model_dir,
)


@pytest.fixture(scope="module")
def det():
    X, y = blobs(200, 20, p=4)
    return small_anoean(X, y, max_epochs=2)


@pytest.fixture(scope="module")
def X_check():
    return blobs(50, 10, p=4, seed=3)[0]


# --------------------------------------------------------------------------- saving
def test_save_refuses_a_directory_that_is_not_a_model(det, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for kw in ({}, {"overwrite": True}):
        with pytest.raises(FileExistsError, match="not an anoean model directory"):
            det.save(tmp_path, **kw)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_save_dot_touches_nothing(det, tmp_path: Path, monkeypatch) -> None:
    """The reported accident: save('.') in a working directory deleted its contents."""
    (tmp_path / "analysis.py").write_text("print(1)")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileExistsError):
        det.save(".")
    assert os.listdir(tmp_path) == ["analysis.py"]


def test_save_refuses_a_file(det, tmp_path: Path) -> None:
    f = tmp_path / "model"
    f.write_text("a file")
    with pytest.raises(FileExistsError, match="not a directory"):
        det.save(f, overwrite=True)
    assert f.read_text() == "a file"


def test_save_into_new_and_empty_directories(det, tmp_path: Path, X_check) -> None:
    p = det.save(tmp_path / "a" / "b")  # parents are made
    assert sorted(os.listdir(p)) == [CONFIG_FILE, WEIGHTS_FILE]
    (tmp_path / "empty").mkdir()
    det.save(tmp_path / "empty")
    assert is_model_dir(tmp_path / "empty")
    np.testing.assert_array_equal(load(p).anomaly_score(X_check), det.anomaly_score(X_check))
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no staging left


def test_replacing_a_model_needs_overwrite_and_keeps_foreign_files(
    det, tmp_path: Path, X_check
) -> None:
    p = det.save(tmp_path / "m")
    (p / "README.txt").write_text("operator notes")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        det.save(p)
    X, y = blobs(200, 20, p=4, seed=1)
    other = small_anoean(X, y, max_epochs=1, random_state=5)
    other.save(p, overwrite=True)
    assert (p / "README.txt").read_text() == "operator notes"
    got = load(p).anomaly_score(X_check)
    np.testing.assert_array_equal(got, other.anomaly_score(X_check))
    assert not np.array_equal(got, det.anomaly_score(X_check))
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_failed_save_leaves_the_destination_untouched(det, tmp_path: Path, monkeypatch) -> None:
    p = det.save(tmp_path / "m")
    before = {n: (p / n).read_bytes() for n in os.listdir(p)}
    import anoean.core.modelfile as mf

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mf.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        det.save(p, overwrite=True)
    assert {n: (p / n).read_bytes() for n in os.listdir(p)} == before
    assert sorted(os.listdir(tmp_path)) == ["m"]  # the staging directory is gone


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_model_files_follow_the_umask(det, tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        p = det.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o777 & ~umask
    for f in p.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_check_model_destination(tmp_path: Path, det) -> None:
    check_model_destination(tmp_path / "new")
    check_model_destination(tmp_path)  # empty
    det.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite"):
        check_model_destination(tmp_path / "m")
    check_model_destination(tmp_path / "m", overwrite=True)


# --------------------------------------------------------------------------- integrity
def test_config_records_its_own_digest(det, tmp_path: Path) -> None:
    p = det.save(tmp_path / "m")
    cfg = json.loads((p / CONFIG_FILE).read_text())
    assert len(cfg[DIGEST_KEY]) == 64
    # re-indenting keeps the digest valid: the content, not the layout, is sealed
    (p / CONFIG_FILE).write_text(json.dumps(cfg))
    load(p)
    cfg["state"]["threshold_"] = cfg["state"]["threshold_"] * 2
    (p / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="config.json"):
        load(p)


def test_non_regular_file_is_refused(det, tmp_path: Path) -> None:
    p = det.save(tmp_path / "m")
    (p / WEIGHTS_FILE).unlink()
    os.symlink("/dev/zero", p / WEIGHTS_FILE)  # would read forever if followed blindly
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        load(p)


def _damage(src: Path, dst: Path, data) -> str:  # type: ignore[no-untyped-def]
    """Apply one random kind of damage to a copy of a model directory; return the file."""
    shutil.copytree(src, dst)
    names = sorted(os.listdir(dst))
    kind = data.draw(st.sampled_from(["flip", "truncate", "delete", "rename", "edit", "link"]))
    name = data.draw(st.sampled_from(names))
    f = dst / name
    raw = bytearray(f.read_bytes())
    if kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
        f.write_bytes(bytes(raw))
    elif kind == "truncate":
        f.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw) - 1))]))
    elif kind == "delete":
        f.unlink()
    elif kind == "rename":
        f.rename(dst / (name + ".bak"))
    elif kind == "link":
        target = data.draw(st.sampled_from([n for n in names if n != name] + ["/etc/hostname"]))
        f.unlink()
        os.symlink(target if target.startswith("/") else dst / target, f)
    else:  # edit a JSON value, or a byte of the weights when the file is not JSON
        if not name.endswith(".json"):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
            f.write_bytes(bytes(raw))
            return name
        obj = json.loads(raw)
        path: list = []
        node = obj
        while isinstance(node, (dict, list)) and node:
            keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
            k = data.draw(st.sampled_from(keys))
            path.append(k)
            if not isinstance(node[k], (dict, list)) or data.draw(st.booleans()):
                break
            node = node[k]
        new = data.draw(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**40), 2**40),
                st.floats(allow_nan=False),
                st.text(max_size=8),
            )
        )
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        if path:
            parent[path[-1]] = new
        f.write_text(json.dumps(obj, indent=1))
    return name


@pytest.fixture(scope="module")
def saved_model(det, tmp_path_factory) -> Path:
    return det.save(tmp_path_factory.mktemp("fuzz") / "model")


@given(data=st.data())
def test_fuzzed_model_directory_is_refused_or_identical(
    saved_model: Path, tmp_path_factory, X_check, det, data
) -> None:
    """Byte flips, truncation, deleted/renamed files, edited JSON values and symlinks: a
    ModelFileError naming the damaged file, or (when the damage changed nothing that
    matters, e.g. a value equal to the old one) a model whose scores are identical."""
    dst = tmp_path_factory.mktemp("case") / "model"
    name = _damage(saved_model, dst, data)
    try:
        got = load(dst)
    except ModelFileError as exc:
        assert name.split(".")[0] in str(exc) or "model directory" in str(exc), str(exc)
        return
    np.testing.assert_array_equal(got.anomaly_score(X_check), det.anomaly_score(X_check))
    assert got.threshold_ == det.threshold_


# --------------------------------------------------------------------------- pipelines
@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    import pyarrow as pa
    from _cli_helpers import flows

    from anoean.serve.fit import fit_pipeline
    from anoean.serve.pipeline import save_pipeline

    data = flows(300, seed=0)
    table = pa.table({k: np.asarray(v).tolist() for k, v in data.items()})
    rep = fit_pipeline(
        table,
        label_column="is_attack",
        exclude=["id"],
        params={"max_epochs": 1, "device": "cpu"},
        verbose=0,
    )
    path = save_pipeline(rep.pipeline, tmp_path_factory.mktemp("pipe") / "model")
    test = pa.table({k: np.asarray(v).tolist() for k, v in flows(60, seed=1).items()})
    return path, test, rep.pipeline.score(rep.pipeline.features(test)), rep.pipeline.threshold


@given(data=st.data())
def test_fuzzed_pipeline_directory_is_refused_or_identical(
    saved_pipeline, tmp_path_factory, data
) -> None:
    """As above for the four files of a model directory written by ``anoean fit``."""
    from anoean.serve.pipeline import load_pipeline

    path, test, ref, threshold = saved_pipeline
    dst = tmp_path_factory.mktemp("case") / "model"
    name = _damage(path, dst, data)
    engine = data.draw(st.sampled_from(["numpy", "torch"]))
    try:
        pipe = load_pipeline(dst, engine=engine)
    except ModelFileError as exc:
        msg = str(exc)
        assert name.split(".")[0] in msg or "model directory" in msg or "config" in msg, msg
        return
    event(f"loaded ({engine})")
    got = pipe.score(pipe.features(test))
    np.testing.assert_allclose(got, ref, rtol=0 if engine == "torch" else 1e-5, atol=0)
    assert pipe.threshold == threshold
