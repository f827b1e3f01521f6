"""The scoring hot path (TabularPreprocessor.encode_scorable, taken by score_batch for a batch
in which every row can be encoded) gives the same features, bit for bit, and the same scored
batch as the general path; any batch with a row that may not be encodable goes the general
way."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from anoean.data.preprocessing import TabularPreprocessor


def _table(n: int = 500, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "count": pa.array(rng.integers(0, 1000, n), pa.int64()),
            "rate": pa.array(rng.random(n)),
            "small": pa.array(rng.random(n).astype(np.float32)),
            "flag": pa.array(rng.random(n) < 0.3),
            "proto": pa.array(rng.choice(["tcp", "udp", "icmp"], n)),
            "service": pa.array(rng.choice(["http", "dns", "smtp", "ftp"], n)),
        }
    )


@pytest.fixture(scope="module")
def pre() -> TabularPreprocessor:
    return TabularPreprocessor(categorical=["proto", "service"]).fit(_table())


def _same(pre: TabularPreprocessor, tab: pa.Table) -> dict[str, int]:
    fast = pre.encode_scorable(tab)
    assert fast is not None
    X, unknown = fast
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = pre.transform(tab)
    assert X.dtype == want.dtype and np.array_equal(X, want)
    assert unknown == pre.unknown_category_counts(tab)
    return unknown


def test_clean_tables_encode_as_transform(pre: TabularPreprocessor) -> None:
    tab = _table(3000, seed=1)  # values beyond the fitted range too: scaled, not refused
    assert _same(pre, tab) == {}
    # dictionary-encoded categories (as read from Parquet), several chunks
    cats = tab.set_column(4, "proto", pc.dictionary_encode(tab.column("proto")))
    cats = cats.set_column(5, "service", pc.dictionary_encode(tab.column("service")))
    assert pa.types.is_dictionary(cats.schema.field("proto").type)
    _same(pre, cats)
    _same(pre, pa.concat_tables([cats.slice(0, 1000), cats.slice(1000)]))


def test_unknown_categories_are_counted_or_refused(pre: TabularPreprocessor) -> None:
    tab = _table(400, seed=2)
    svc = tab.column("service").to_pylist()
    svc[7] = svc[99] = "telnet"
    tab = tab.set_column(5, "service", pa.array(svc))
    assert _same(pre, tab) == {"service": 2}
    assert pre.encode_scorable(tab, strict_categories=True) is None
    dict_tab = tab.set_column(5, "service", pc.dictionary_encode(tab.column("service")))
    assert _same(pre, dict_tab) == {"service": 2}


@pytest.mark.parametrize(
    "column,value",
    [("rate", None), ("rate", float("nan")), ("rate", float("inf")), ("rate", 1e300),
     ("count", None), ("proto", None)],
)  # fmt: skip
def test_a_row_that_may_not_encode_takes_the_general_path(
    pre: TabularPreprocessor, column: str, value: object
) -> None:
    tab = _table(200, seed=3)
    vals = tab.column(column).to_pylist()
    vals[50] = value
    tab = tab.set_column(
        tab.column_names.index(column), column, pa.array(vals, tab.schema.field(column).type)
    )
    assert pre.encode_scorable(tab) is None


def test_score_batch_is_the_same_with_or_without_the_fast_path(
    model, data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    import anoean.serve.batch as batch_mod
    from anoean.serve.pipeline import load_pipeline

    pipe = load_pipeline(model)
    batch = pq.read_table(data_dir / "test.parquet").combine_chunks().to_batches()[0]
    taken = []
    real = batch_mod._encode_scorable

    def spy(*args, **kw):
        out = real(*args, **kw)
        taken.append(out is not None)
        return out

    compact = batch_mod.score_batch(pipe, batch)  # the compact path (ONNX engine) first
    assert taken == [] and pipe.scorer.compact is not None
    monkeypatch.setattr(batch_mod, "_score_compact", lambda *a, **k: None)
    monkeypatch.setattr(batch_mod, "_encode_scorable", spy)
    fast = batch_mod.score_batch(pipe, batch)
    assert taken == [True]
    monkeypatch.setattr(batch_mod, "_encode_scorable", lambda *a, **k: None)
    general = batch_mod.score_batch(pipe, batch)
    assert fast.equals(general)
    # the compact graph sums in another order: float32 round-off
    np.testing.assert_allclose(
        compact.column("anomaly_score").to_numpy(),
        general.column("anomaly_score").to_numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    assert compact.drop_columns(["anomaly_score"]).equals(general.drop_columns(["anomaly_score"]))
