"""Scoring on Dask (anoean.distributed; ``anoean score --engine dask``), on a LocalCluster of
2 worker processes of 1 thread each: the same scores as single-process scoring, the row
order and every column kept, the per-row error policy, a worker killed mid-run, and the
errors that must come before anything runs."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _cli_helpers import fails, flows, run

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from anoean.data.tables import DataError  # noqa: E402
from anoean.distributed import (  # noqa: E402
    ScoringJobError,
    model_payload,
    score_dask,
    score_files_dask,
)
from anoean.distributed.files import STAGING_PREFIX  # noqa: E402
from anoean.serve.batch import score_batch  # noqa: E402
from anoean.serve.pipeline import load_pipeline  # noqa: E402

pytestmark = pytest.mark.timeout(300)  # a model is fitted in the first test's set-up


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _write_parquet(data: dict, path: Path, row_group: int | None = None) -> Path:
    table = pa.table({k: pa.array(np.asarray(v).tolist()) for k, v in data.items()})
    pq.write_table(table, path, row_group_size=row_group)
    return path


@pytest.fixture(scope="module")
def flows_dir(data_dir: Path) -> Path:
    """Three Parquet files of different sizes (the largest in several row groups)."""
    d = data_dir / "parts"
    d.mkdir()
    for i, n in enumerate([2500, 700, 4100]):
        _write_parquet(flows(n, seed=20 + i), d / f"part-{i}.parquet", row_group=1000)
    return d


def _single(model: Path, src: Path, out: Path, *extra: str) -> pa.Table:
    res = run("score", model, src, "--out", out, *extra)
    assert res.exit_code == 0, res.output
    return pq.read_table(out)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- the CLI
def test_dask_scores_equal_single_process_scores_file_by_file(
    client, model: Path, flows_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    res = run(
        "score", model, str(flows_dir / "*.parquet"), "--out", out, "--engine", "dask",
        "--scheduler", client.scheduler.address, "--batch-rows", "512",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    names = ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    assert _listing(out) == names  # one file per input, nothing else (no staging folder)
    assert "scored 7300 rows from 3 file(s)" in res.output and "wrote 3 file(s)" in res.output
    for name in names:
        src = flows_dir / name
        got = pq.read_table(out / name)
        want = _single(model, src, tmp_path / f"single-{name}", "--batch-rows", "512")
        assert got.equals(want), name  # identical: every column, every row, in order
        inp = pq.read_table(src)
        assert got.column_names == [*inp.column_names, "anomaly_score", "is_anomaly"]
        assert got.select(inp.column_names).equals(inp)


def test_a_local_cluster_from_workers_and_the_json_summary(
    model: Path, flows_dir: Path, tmp_path: Path
) -> None:
    import json

    out = tmp_path / "scores"
    files = [flows_dir / "part-1.parquet", flows_dir / "part-0.parquet"]  # a list, in order
    res = run("score", model, *files, "--out", out, "--engine", "dask", "--workers", "2", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["workers"] == 2 and rep["threads"] == 2
    assert rep["rows"] == 3200 and [f["source"] for f in rep["files"]] == [str(f) for f in files]
    assert [Path(f["output"]).name for f in rep["files"]] == ["part-1.parquet", "part-0.parquet"]
    want = _single(model, files[0], tmp_path / "single.parquet")
    assert pq.read_table(out / "part-1.parquet").equals(want)
    assert rep["alarms"] == sum(
        int(np.sum(pq.read_table(out / f.name).column("is_anomaly").to_numpy())) for f in files
    )


def test_flag_policy_matches_single_process(
    client, model: Path, data_dir: Path, tmp_path: Path
) -> None:
    data = flows(900, seed=5)
    data["src_bytes"] = data["src_bytes"].astype(object)
    data["src_bytes"][[3, 500]] = None  # a missing number
    data["proto"] = data["proto"].astype(object)
    data["proto"][700] = None  # a missing category
    inp = tmp_path / "in"
    inp.mkdir()
    src = _write_parquet(data, inp / "bad.parquet")
    _write_parquet(flows(300, seed=6), inp / "good.parquet")
    out = tmp_path / "scores"
    res = run(
        "score", model, inp, "--out", out, "--engine", "dask", "--on-error", "flag",
        "--scheduler", client.scheduler.address,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3 row(s) not scored" in res.output and f"{src} row 3" in res.output
    got = pq.read_table(out / "bad.parquet")
    want = _single(model, src, tmp_path / "single.parquet", "--on-error", "flag")
    assert got.equals(want)
    assert got.column("anomaly_score").null_count == 3
    assert got.column("is_anomaly").to_numpy(zero_copy_only=False)[[3, 500, 700]].all()
    assert got.column("score_error").to_pylist()[3] is not None


def test_fail_policy_names_the_file_and_row_and_writes_nothing(
    client, model: Path, flows_dir: Path, big_dir: Path, tmp_path: Path
) -> None:
    data = flows(600, seed=7)
    data["dst_bytes"] = data["dst_bytes"].copy()
    data["dst_bytes"][417] = np.inf
    inp = tmp_path / "in"
    inp.mkdir()
    bad = _write_parquet(data, inp / "bad.parquet")
    for name in ("part-0.parquet", "part-2.parquet"):
        (inp / name).write_bytes((flows_dir / name).read_bytes())
    # a long file, still being scored on the other worker when the bad one fails
    (inp / "big-0.parquet").write_bytes((big_dir / "big-0.parquet").read_bytes())
    single = run("score", model, bad, "--out", tmp_path / "single.parquet")
    fails(single, f"{bad}: row 417", "dst_bytes")
    out = tmp_path / "scores"
    res = run(
        "score", model, bad, big_dir / "big-0.parquet", "--out", out, "--engine", "dask",
        "--scheduler", client.scheduler.address, "--batch-rows", "500",
    )  # fmt: skip
    fails(res, f"{bad}: row 417", "dst_bytes", "--on-error flag")
    # the same message as single-process scoring
    assert single.output.strip().splitlines()[-1] == res.output.strip().splitlines()[-1]
    time.sleep(1.0)  # nothing still running writes anything afterwards
    assert not out.exists()  # made by the job, and removed with nothing in it
    # an existing output folder keeps exactly what it held
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run(
        "score", model, inp, "--out", out, "--engine", "dask", "--overwrite",
        "--scheduler", client.scheduler.address,
    )  # fmt: skip
    fails(res, f"{bad}: row 417")
    assert _listing(out) == ["keep.txt"]


def test_refusals_before_anything_runs(model: Path, flows_dir: Path, tmp_path: Path) -> None:
    glob = str(flows_dir / "*.parquet")
    both = ["--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]
    res = run("score", model, glob, "--out", tmp_path / "o", *both)
    assert res.exit_code == 2 and "exclusive" in res.output
    res = run("score", model, glob, "--out", tmp_path / "o", "--workers", "2")
    assert res.exit_code == 2 and "--engine dask" in res.output
    res = run("score", model, flows_dir, "--out", tmp_path / "o.parquet")
    assert res.exit_code == 2 and "--engine dask" in res.output
    res = run("score", model, *sorted(flows_dir.iterdir()), "--out", tmp_path / "o.parquet")
    assert res.exit_code == 2 and "--engine dask" in res.output
    # a non-empty output folder, without --overwrite
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    fails(run("score", model, glob, "--out", full, "--engine", "dask"), "not empty", "--overwrite")
    # two inputs of the same name
    other = tmp_path / "other"
    other.mkdir()
    (other / "part-0.parquet").write_bytes((flows_dir / "part-0.parquet").read_bytes())
    res = run(
        "score", model, glob, other / "part-0.parquet", "--out", tmp_path / "o", "--engine", "dask"
    )
    fails(res, "same name")
    # a pattern that matches nothing; an input that already has an output column
    fails(run("score", model, str(tmp_path / "*.pq"), "--out", tmp_path / "o", "--engine", "dask"))
    scored = _single(model, flows_dir / "part-1.parquet", tmp_path / "in" / "scored.parquet")
    assert scored.num_rows == 700
    res = run("score", model, tmp_path / "in", "--out", tmp_path / "o", "--engine", "dask")
    fails(res, "already has a column 'anomaly_score'")
    assert not (tmp_path / "o").exists()


def test_a_missing_dask_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, model: Path, flows_dir: Path, tmp_path: Path
) -> None:
    for name in ("dask", "dask.dataframe", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'anoean\[distributed\]'"):
        score_dask(object(), model)
    res = run("score", model, flows_dir, "--out", tmp_path / "o", "--engine", "dask")
    fails(res, "pip install 'anoean[distributed]'")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- killed workers
def _kill_writer_when_busy(staging_parent: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill (SIGKILL) the first worker seen writing a temporary output file."""
    while not stop.is_set():
        for d in staging_parent.glob(f"{STAGING_PREFIX}*"):
            for tmp in d.glob(".*.tmp-*"):
                pid = int(tmp.name.rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.002)


@pytest.fixture(scope="module")
def big_dir(data_dir: Path) -> Path:
    d = data_dir / "big"
    d.mkdir()
    for i in range(2):
        _write_parquet(flows(120_000, seed=40 + i), d / f"big-{i}.parquet", row_group=20_000)
    return d


def test_a_worker_killed_mid_file_and_the_job_completes(
    client, model: Path, big_dir: Path, tmp_path: Path
) -> None:
    pids = set(client.run(os.getpid).values())
    out = tmp_path / "scores"
    out.mkdir()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_writer_when_busy, args=(out, killed, stop))
    killer.start()
    try:
        res = score_files_dask(model, [big_dir], out, client=client, batch_rows=500)
    finally:
        stop.set()
        killer.join()
    assert killed and killed[0] in pids  # a worker was killed while writing a file
    assert res.rows == 240_000
    assert _listing(out) == ["big-0.parquet", "big-1.parquet"]  # no temporary file left
    for name in _listing(out):
        want = _single(model, big_dir / name, tmp_path / f"single-{name}", "--batch-rows", "500")
        assert pq.read_table(out / name).equals(want)
    client.wait_for_workers(2, timeout=30)  # the nanny restarted it


def test_a_worker_that_keeps_dying_fails_clearly_and_leaves_nothing(
    model: Path, big_dir: Path, tmp_path: Path
) -> None:
    import dask

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):  # fmt: skip
        out = tmp_path / "scores"
        out.mkdir()
        killed: list[int] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_writer_when_busy, args=(out, killed, stop))
        killer.start()
        try:
            with pytest.raises(ScoringJobError, match="died") as err:
                score_files_dask(model, [big_dir], out, client=c, batch_rows=500)
        finally:
            stop.set()
            killer.join()
    assert killed and "nothing was written" in str(err.value)
    assert "big-" in str(err.value)  # names the file
    assert _listing(out) == []  # no partial file, no temporary file, no staging folder


# --------------------------------------------------------------------------- score_dask
def _ddf(flows_dir: Path):
    return dd.read_parquet(sorted(str(p) for p in flows_dir.glob("*.parquet")))


def test_score_dask_equals_score_batch_partition_by_partition(
    client, model: Path, flows_dir: Path
) -> None:
    ddf = _ddf(flows_dir)
    scored = score_dask(ddf, model)
    assert list(scored.columns) == [*ddf.columns, "anomaly_score", "is_anomaly"]
    assert scored.npartitions == ddf.npartitions >= 3
    got = scored.compute()
    assert got.dtypes.equals(scored._meta.dtypes)  # the meta is what comes back
    pipe = load_pipeline(model)
    pos = 0
    for i in range(ddf.npartitions):
        part = ddf.get_partition(i).compute()
        want = score_batch(
            pipe, pa.Table.from_pandas(part[pipe.preprocessor.input_columns_], preserve_index=False)
        )
        mine = got.iloc[pos : pos + len(part)]
        assert mine.index.equals(part.index)  # the partition's own index, in order
        np.testing.assert_array_equal(
            mine["anomaly_score"].to_numpy(), want.column("anomaly_score").to_numpy()
        )
        np.testing.assert_array_equal(
            mine["is_anomaly"].to_numpy(), want.column("is_anomaly").to_numpy(zero_copy_only=False)
        )
        assert mine[list(part.columns)].equals(part)  # every input column kept as it was
        pos += len(part)
    assert pos == len(got) == 7300
    assert got["id"].tolist() == ddf["id"].compute().tolist()  # row order kept


def test_score_dask_sends_the_model_once_not_in_every_task(model: Path, flows_dir: Path) -> None:
    import cloudpickle

    ddf = dd.from_pandas(_ddf(flows_dir).compute(), npartitions=6)
    graph = dict(score_dask(ddf, model).__dask_graph__())
    weights = model_payload(model).files["weights.safetensors"][:4096]
    # each task pickled alone (one pickle of the whole graph would share repeated objects):
    # the model's bytes are in one of them, which the 6 scoring tasks depend on
    holders = [k for k, task in graph.items() if weights in cloudpickle.dumps(task)]
    assert len(holders) == 1
    scoring = [k for k in graph if isinstance(k, tuple) and "_score_partition" in k[0]]
    assert len(scoring) == 6
    assert all(holders[0] in graph[k].dependencies for k in scoring)


def test_score_dask_flags_unscorable_rows(client, model: Path) -> None:
    import pandas as pd

    data = flows(400, seed=9)
    df = pd.DataFrame(data)
    df.index = df.index * 10 + 3  # an index of its own, kept
    df.loc[df.index[[5, 250]], "duration"] = np.nan
    ddf = dd.from_pandas(df, npartitions=3)
    # partitions run at once: either bad row may be the one reported
    with pytest.raises(DataError, match=r"partition (0: row 5|1: row 116), column 'duration'"):
        score_dask(ddf, model).compute()
    got = score_dask(ddf, model, on_error="flag").compute()
    assert list(got.columns) == [*df.columns, "anomaly_score", "is_anomaly", "score_error"]
    assert got.index.equals(df.index)
    bad = got.index[[5, 250]]
    assert got.loc[bad, "anomaly_score"].isna().all() and got.loc[bad, "is_anomaly"].all()
    assert got.loc[bad, "score_error"].str.contains("duration").all()
    assert got["anomaly_score"].notna().sum() == 398 and got["score_error"].notna().sum() == 2


def test_score_dask_refuses_before_computing(model: Path, flows_dir: Path) -> None:
    ddf = _ddf(flows_dir)
    with pytest.raises(DataError, match="already has column"):
        score_dask(ddf.assign(anomaly_score=1.0), model)
    with pytest.raises(DataError, match="src_bytes"):
        score_dask(ddf.drop(columns=["src_bytes"]), model)
    with pytest.raises(ValueError, match="on_error"):
        score_dask(ddf, model, on_error="skip")


def test_score_dask_takes_a_loaded_pipeline(client, model: Path, flows_dir: Path) -> None:
    ddf = _ddf(flows_dir)
    want = score_dask(ddf, model).compute()
    pipe = load_pipeline(model)
    assert model_payload(pipe).digest == model_payload(model).digest  # read from its folder
    np.testing.assert_array_equal(
        score_dask(ddf, pipe).compute()["anomaly_score"], want["anomaly_score"]
    )
    unsaved = load_pipeline(model, engine="torch")
    unsaved.path = None  # saved to bytes first (a copy: the pipeline is not changed)
    got = score_dask(ddf, unsaved, engine="auto").compute()
    assert unsaved.path is None
    np.testing.assert_array_equal(got["anomaly_score"], want["anomaly_score"])
