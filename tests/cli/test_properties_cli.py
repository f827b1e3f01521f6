"""Property-based tests of the command-line pipeline (hypothesis): random tables, at fit and
at score time, give either one finite score per row or a non-zero exit with a one-line
message naming the row or column; never a NaN score, a traceback or a partial output file.

The number of examples comes from the profile in ``conftest.py`` (200 in CI, fixed seed;
``HYPOTHESIS_PROFILE=deep`` for 10,000).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _cli_helpers import flows, write_table
from click.testing import CliRunner
from hypothesis import event, given
from hypothesis import strategies as st

from anoean.cli import main

FAST = ["--param", "max_epochs=1", "--param", "device=cpu", "--param", "batch_size=64", "--quiet"]
NUMERIC = ["duration", "src_bytes", "dst_bytes"]
CATEGORIES = {"proto": ["tcp", "udp", "icmp"], "service": ["http", "smtp", "dns", "private"]}

# numbers as a user's file may hold them: ordinary, huge, tiny, NaN, inf, and text tokens
_number_text = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: f"{v:.6g}"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e45", "-1e300", "3.4e38", "1e308", "nan", "inf", "-inf", "0", "-0"]),
    st.sampled_from(["", "n/a", "?", "-", "NA", "abc", "1,5", '"7"', " 3 "]),
    st.integers(-(2**63), 2**63 - 1).map(str),
)
_category_text = st.one_of(
    st.sampled_from(sum(CATEGORIES.values(), [])),
    st.sampled_from(["", "gopher", "NA", "?", "TCP", " tcp", "0"]),
    st.text(alphabet=st.characters(blacklist_characters=',"\r\n', codec="utf-8"), max_size=6),
)


def _csv_line(cells: list[str]) -> str:
    return ",".join(cells)


@st.composite
def tables(draw, *, label: bool) -> str:  # type: ignore[no-untyped-def]
    """CSV text with the fit-time columns, sometimes one missing, renamed, duplicated or
    extra, and any cell content."""
    names = ["id", *NUMERIC, *CATEGORIES] + (["is_attack"] if label else [])
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "dup", "extra"]))
    if change == "drop":
        names.remove(draw(st.sampled_from(NUMERIC + list(CATEGORIES))))
    elif change == "dup":
        names.append(draw(st.sampled_from(names)))
    elif change == "extra":
        names.append("extra")
    n = draw(st.integers(1, 25))
    mess = draw(st.sampled_from([0, 0, 0, 3, 30]))  # percent of cells that are odd
    labels = draw(st.sampled_from(["valid"] * 4 + ["odd"]))
    rows = []
    for i in range(n):
        cells = []
        for c in names:
            odd = draw(st.integers(0, 99)) < mess
            if c == "id":
                cells.append(str(i))
            elif c in CATEGORIES:
                cells.append(draw(_category_text if odd else st.sampled_from(CATEGORIES[c])))
            elif c == "is_attack":
                pool = ["0", "0", "0", "1"] if labels == "valid" else ["0", "1", "", "2", "normal"]
                cells.append(draw(st.sampled_from(pool)))
            elif odd:
                cells.append(draw(_number_text))
            else:
                cells.append(f"{draw(st.floats(0, 10, allow_nan=False)):.4g}")
        rows.append(_csv_line(cells))
    return "\n".join([_csv_line(names), *rows]) + "\n"


def _invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def _clear_failure(res) -> None:  # type: ignore[no-untyped-def]
    """Exit 1 with one 'Error: ...' line naming the row, line or column (no traceback)."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, res.output
    msg = errors[0]
    assert any(w in msg for w in ("row", "line", "column", "label")), msg
    assert "Traceback" not in res.output


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("prop")
    data = flows(400, seed=0)
    data["service"] = np.where(data["service"] == "telnet", "private", data["service"])
    write_table(data, d / "train.csv")
    res = _invoke("fit", d / "train.csv", "--label-column", "is_attack", "--exclude", "id",
                  "--out", d / "model", *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    return d / "model"


@given(text=tables(label=False), flag=st.booleans(), strict=st.booleans())
def test_score_gives_finite_scores_or_a_clear_error(
    model: Path, tmp_path_factory, text: str, flag: bool, strict: bool
) -> None:
    d = tmp_path_factory.mktemp("score")
    src, out = d / "in.csv", d / "out.parquet"
    src.write_text(text, encoding="utf-8")
    args = ["score", model, src, "--out", out, "--on-error", "flag" if flag else "fail"]
    res = _invoke(*args, "--strict-categories" if strict else "--lenient-categories")
    event("refused" if res.exit_code else "scored")
    if res.exit_code != 0:
        _clear_failure(res)
        assert sorted(os.listdir(d)) == ["in.csv"], os.listdir(d)  # no partial output
        return
    assert sorted(os.listdir(d)) == ["in.csv", "out.parquet"]
    got = pq.read_table(out)
    assert got.num_rows == text.count("\n") - 1  # one output row per input row
    scores = got.column("anomaly_score").to_pylist()
    alarms = got.column("is_anomaly").to_pylist()
    for s, a in zip(scores, alarms, strict=True):
        assert a in (True, False)
        assert s is None or math.isfinite(s)
        if s is None:
            assert flag and a is True  # unscorable: kept, flagged as an anomaly
    if flag:
        errs = got.column("score_error").to_pylist()
        assert [e is not None for e in errs] == [s is None for s in scores]


@given(text=tables(label=True))
def test_fit_gives_a_usable_model_or_a_clear_error(tmp_path_factory, text: str) -> None:
    d = tmp_path_factory.mktemp("fit")
    src, out = d / "train.csv", d / "model"
    src.write_text(text, encoding="utf-8")
    res = _invoke("fit", src, "--label-column", "is_attack", "--out", out, *FAST)
    event("refused" if res.exit_code else "fitted")
    if res.exit_code != 0:
        _clear_failure(res)
        assert sorted(os.listdir(d)) == ["train.csv"], os.listdir(d)  # nothing half-written
        return
    assert sorted(os.listdir(d)) == ["model", "train.csv"]
    scored = d / "scored.parquet"
    res = _invoke("score", out, src, "--out", scored, "--on-error", "flag")
    assert res.exit_code == 0, res.output
    scores = pq.read_table(scored).column("anomaly_score").to_pylist()
    assert all(s is None or math.isfinite(s) for s in scores)
