"""Tests of anoean.data.preprocessing.TabularPreprocessor."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anoean.data.preprocessing import TabularPreprocessor, as_table


def _train():
    return pa.table(
        {
            "dur": pa.array([0, 10, 5, 10], pa.int64()),
            "proto": ["tcp", "udp", "tcp", "icmp"],
            "rate": [0.5, 0.5, 0.5, 0.5],  # constant in training
            "svc": ["http", "ftp", "http", "ssh"],
        }
    )


def test_fit_transform_values_layout_and_names():
    p = TabularPreprocessor()
    X = p.fit_transform(_train())
    assert X.dtype == np.float32 and X.shape == (4, 2 + 3 + 3)
    assert p.input_columns_ == ["dur", "proto", "rate", "svc"]
    assert p.numeric_columns_ == ["dur", "rate"]
    assert p.categorical_columns_ == ["proto", "svc"]  # inferred: the non-numeric ones
    assert p.categories_ == {"proto": ["icmp", "tcp", "udp"], "svc": ["ftp", "http", "ssh"]}
    assert p.feature_names_out_ == [
        "dur",
        "rate",
        "proto=icmp",
        "proto=tcp",
        "proto=udp",
        "svc=ftp",
        "svc=http",
        "svc=ssh",
    ]
    expected = np.array(
        [
            # dur  rate  icmp tcp udp  ftp http ssh
            [0.0, 0.0, 0, 1, 0, 0, 1, 0],
            [1.0, 0.0, 0, 0, 1, 1, 0, 0],
            [0.5, 0.0, 0, 1, 0, 0, 1, 0],
            [1.0, 0.0, 1, 0, 0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(p.data_min_, [0.0, 0.5])
    np.testing.assert_array_equal(p.data_max_, [10.0, 0.5])


def test_out_of_range_values_are_not_clipped_and_constant_column_shifts():
    p = TabularPreprocessor().fit(_train())
    new = {"dur": [20, -10], "proto": ["tcp", "tcp"], "rate": [1.5, 0.5], "svc": ["ssh", "ssh"]}
    X = p.transform(new)
    np.testing.assert_allclose(X[:, 0], [2.0, -1.0])  # beyond [0, 1]: kept, not clipped
    np.testing.assert_allclose(X[:, 1], [1.0, 0.0])  # constant column: range 1 -> x - min


def test_explicit_categorical_includes_numeric_columns_sorted_by_value():
    t = {"code": [10, 2, 2, 1], "x": [1.0, 2.0, 3.0, 4.0], "name": ["b", "a", "b", "a"]}
    p = TabularPreprocessor(categorical=["code"], exclude=["name"])
    X = p.fit_transform(t)
    assert p.categories_ == {"code": ["1", "2", "10"]}
    assert p.feature_names_out_ == ["x", "code=1", "code=2", "code=10"]
    assert p.input_columns_ == ["code", "x"]
    np.testing.assert_array_equal(X[0, 1:], [0, 0, 1])
    # the excluded column is not needed at transform time, and not warned about when present
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.transform({"code": [2], "x": [1.0], "name": ["z"]})
        p.transform({"code": [2], "x": [1.0]})


def test_categorical_order_follows_the_argument():
    p = TabularPreprocessor(categorical=["svc", "proto"]).fit(_train())
    assert p.feature_names_out_[2:5] == ["svc=ftp", "svc=http", "svc=ssh"]


def test_unknown_category_ignored_gives_all_zero_block():
    p = TabularPreprocessor().fit(_train())
    X = p.transform({"dur": [1], "proto": ["sctp"], "rate": [0.5], "svc": ["http"]})
    np.testing.assert_array_equal(X[0, 2:5], [0, 0, 0])
    np.testing.assert_array_equal(X[0, 5:8], [0, 1, 0])


def test_unknown_category_error_names_column_row_and_value():
    p = TabularPreprocessor(unknown="error").fit(_train())
    bad = {"dur": [1, 1], "proto": ["tcp", "sctp"], "rate": [0.5, 0.5], "svc": ["http", "http"]}
    with pytest.raises(ValueError, match=r"'proto'.*'sctp'.*row 1"):
        p.transform(bad)


def test_missing_column_raises_and_extra_column_warns():
    p = TabularPreprocessor().fit(_train())
    t = _train()
    with pytest.raises(ValueError, match=r"missing.*'svc'"):
        p.transform(t.drop_columns(["svc"]))
    with pytest.warns(UserWarning, match="surprise"):
        X = p.transform(t.append_column("surprise", pa.array([1, 2, 3, 4])))
    np.testing.assert_array_equal(X, p.transform(t))


def test_column_order_at_transform_does_not_matter():
    p = TabularPreprocessor().fit(_train())
    t = _train()
    np.testing.assert_array_equal(
        p.transform(t.select(["svc", "rate", "proto", "dur"])), p.transform(t)
    )


@pytest.mark.parametrize(
    ("column", "values", "match"),
    [
        ("dur", [0.0, float("nan"), 1.0, 2.0], r"'dur'.*non-finite.*nan.*row 1"),
        ("dur", [0.0, 1.0, float("inf"), 2.0], r"'dur'.*non-finite.*row 2"),
        ("dur", pa.array([0, 1, None, 2]), r"'dur'.*missing.*row 2"),
        ("proto", pa.array(["tcp", None, "tcp", "tcp"]), r"'proto'.*missing.*row 1"),
    ],
)
def test_invalid_values_raise_at_fit_and_transform(column, values, match):
    t = _train()
    t = t.set_column(t.column_names.index(column), column, pa.array(values))
    with pytest.raises(ValueError, match=match):
        TabularPreprocessor().fit(t)
    p = TabularPreprocessor().fit(_train())
    with pytest.raises(ValueError, match=match):
        p.transform(t)


def test_non_numeric_value_in_numeric_column_names_column_row_and_value():
    p = TabularPreprocessor().fit(_train())
    t = {
        "dur": ["1", "2", "3", "abc", "5"],
        "proto": ["tcp"] * 5,
        "rate": [0.5] * 5,
        "svc": ["http"] * 5,
    }
    with pytest.raises(ValueError, match=r"'dur'.*'abc'.*row 3"):
        p.transform(t)
    # numbers written as text are fine
    t["dur"] = ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(p.transform(t)[:, 0], [0.1, 0.2, 0.3, 0.4, 0.5])


def test_json_round_trip_and_file_save_load(tmp_path):
    p = TabularPreprocessor(categorical=["proto", "svc"], unknown="error").fit(_train())
    s = p.to_json()
    state = json.loads(s)  # plain JSON
    assert state["format"] == "anoean.TabularPreprocessor"
    q = TabularPreprocessor.from_json(s)
    new = {"dur": [3, 99], "proto": ["udp", "icmp"], "rate": [0.1, 0.7], "svc": ["ftp", "ssh"]}
    np.testing.assert_array_equal(q.transform(new), p.transform(new))
    assert q.feature_names_out_ == p.feature_names_out_ and q.unknown == "error"
    path = tmp_path / "pre.json"
    p.save(path)
    r = TabularPreprocessor.load(path)
    np.testing.assert_array_equal(r.transform(new), p.transform(new))
    assert path.read_text(encoding="utf-8").lstrip().startswith("{")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something else"),
        lambda d: d.update(version=99),
        lambda d: d.update(data_min=[0.0]),
        lambda d: d["categories"].pop("svc"),
        lambda d: d.pop("input_columns"),
    ],
)
def test_from_json_rejects_malformed_state(mutate):
    d = TabularPreprocessor().fit(_train()).to_dict()
    mutate(d)
    with pytest.raises(ValueError, match="TabularPreprocessor"):
        TabularPreprocessor.from_json(json.dumps(d))
    with pytest.raises(ValueError, match="cannot be parsed"):
        TabularPreprocessor.from_json("{not json")


def test_accepts_record_batch_dict_and_pandas():
    t = _train()
    p = TabularPreprocessor().fit(t)
    ref = p.transform(t)
    np.testing.assert_array_equal(p.transform(t.to_batches()[0]), ref)
    np.testing.assert_array_equal(p.transform(t.to_pydict()), ref)
    np.testing.assert_array_equal(
        p.transform({k: np.asarray(v) for k, v in t.to_pydict().items()}), ref
    )
    try:
        import pandas as pd  # noqa: F401
    except ImportError:
        pass
    else:
        np.testing.assert_array_equal(p.transform(t.to_pandas()), ref)
    with pytest.raises(TypeError, match="pyarrow.Table"):
        p.transform([[1, 2]])


def test_bad_parameters_and_unfitted_use():
    with pytest.raises(ValueError, match="unknown"):
        TabularPreprocessor(unknown="drop")
    with pytest.raises(ValueError, match="scaling"):
        TabularPreprocessor(scaling="zscore")
    with pytest.raises(ValueError, match="list of column names"):
        TabularPreprocessor(categorical="proto")
    with pytest.raises(ValueError, match="not in the table.*'nope'"):
        TabularPreprocessor(exclude=["nope"]).fit(_train())
    with pytest.raises(ValueError, match="no rows"):
        TabularPreprocessor().fit(_train().slice(0, 0))
    with pytest.raises(RuntimeError, match="not fitted"):
        TabularPreprocessor().transform(_train())
    with pytest.raises(ValueError, match="duplicate"):
        as_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]))


def test_scaling_none_passes_numbers_through():
    p = TabularPreprocessor(scaling="none")
    X = p.fit_transform(_train())
    np.testing.assert_array_equal(X[:, 0], [0, 10, 5, 10])


def test_many_rows_across_chunks():
    rng = np.random.default_rng(0)
    n = 50_000
    cats = np.array(["a", "b", "c", "d"])
    t1 = pa.table({"x": rng.normal(size=n), "c": cats[rng.integers(0, 4, n)]})
    t = pa.concat_tables([t1, t1.slice(0, 1000)])  # two chunks
    X = TabularPreprocessor().fit_transform(t)
    assert X.shape == (n + 1000, 5)
    np.testing.assert_array_equal(X[:, 1:].sum(axis=1), 1.0)
    codes = np.searchsorted(cats, t.column("c").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(np.argmax(X[:, 1:], axis=1), codes)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    st.lists(st.sampled_from(["a", "b", "é", "z z"]), min_size=1, max_size=30),
)
def test_training_data_maps_into_unit_interval_and_round_trips(xs, cs):
    n = min(len(xs), len(cs))
    t = {"x": xs[:n], "c": cs[:n]}
    p = TabularPreprocessor().fit(t)
    X = p.transform(t)
    assert X.shape == (n, 1 + len(set(cs[:n])))
    assert np.all(X[:, 0] >= 0) and np.all(X[:, 0] <= 1)
    np.testing.assert_array_equal(X[:, 1:].sum(axis=1), 1)
    np.testing.assert_array_equal(TabularPreprocessor.from_json(p.to_json()).transform(t), X)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.text(max_size=5), st.floats(), st.none()), min_size=1, max_size=10))
def test_garbage_in_numeric_column_raises_value_error_naming_it(values):
    p = TabularPreprocessor().fit({"num": [0.0, 1.0]})
    try:
        arr = pa.array([None if v is None else str(v) for v in values], pa.string())
    except pa.ArrowException:
        return
    try:
        X = p.transform({"num": arr})
    except ValueError as exc:
        assert "'num'" in str(exc) and "row" in str(exc)
    else:
        assert np.all(np.isfinite(X))


def test_fit_transform_progress_bar_gives_the_same_features(capsys):
    """The preprocessing bar counts the columns learnt then encoded; the features and the
    fitted state are those of a silent fit_transform."""
    quiet = TabularPreprocessor()
    X = quiet.fit_transform(_train())
    assert capsys.readouterr().err == ""
    shown = TabularPreprocessor()
    X2 = shown.fit_transform(_train(), progress=True)
    err = capsys.readouterr().err
    assert "preprocessing" in err and "/8 " in err  # 4 columns fitted, then 4 encoded
    np.testing.assert_array_equal(X, X2)
    assert shown.to_dict() == quiet.to_dict()
    ticks: list[int] = []
    again = TabularPreprocessor()._fit(_train(), lambda: ticks.append(1))
    again._transform(_train(), lambda: ticks.append(2))
    assert ticks == [1] * 4 + [2] * 4  # the bar's total is reached
