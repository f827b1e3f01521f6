"""Bad table files: every problem is a one-line DataError naming the file, the line, the
column and the option that fixes it (anoean.data.tables)."""

from __future__ import annotations

import bz2
import gzip
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anoean.data.tables import (
    DEFAULT_NA_VALUES,
    CsvOptions,
    DataError,
    csv_header,
    find_bad_rows,
    iter_batches,
    read_table,
)


def read_all(path: Path, **kw: Any) -> pa.Table:
    """iter_batches, gathered (small batches, so that later batches are exercised)."""
    kw.setdefault("batch_rows", 100)
    return pa.Table.from_batches(list(iter_batches(path, **kw)))


READERS: dict[str, Callable[..., pa.Table]] = {"read_table": read_table, "iter_batches": read_all}


@pytest.fixture(params=list(READERS))
def reader(request: pytest.FixtureRequest) -> Callable[..., pa.Table]:
    return READERS[request.param]


def fails(fn: Callable[[], Any], *fragments: str) -> str:
    """``fn()`` raises a one-line DataError holding every fragment; returns the message."""
    with pytest.raises(DataError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def rows(n: int, start: int = 0) -> str:
    return "".join(f"{i},x{i}\n" for i in range(start, start + n))


# --------------------------------------------------------------------------- 1. duplicated names
def test_duplicated_csv_column_names(tmp_path: Path, reader: Callable[..., pa.Table]) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a,c,b\n1,2,3,4,5\n")
    fails(
        lambda: reader(path),
        "dup.csv",
        "duplicated column names",
        "'a' (columns 1, 3)",
        "'b' (columns 2, 5)",
        "rename",
    )


def test_duplicated_names_also_with_column_types_and_in_the_header(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("x,x\n1,oops\n")  # the second 'x' would also fail a float conversion
    fails(lambda: read_all(path, column_types={"x": pa.float64()}), "'x' (columns 1, 2)")
    fails(lambda: csv_header(path), "dup.csv", "duplicated column names", "'x' (columns 1, 2)")


def test_duplicated_empty_names_point_at_the_header(tmp_path: Path) -> None:
    path = tmp_path / "trailing.csv"
    path.write_text("a,,\n1,2,3\n")
    fails(lambda: read_table(path), "'' (columns 2, 3)", "an empty name")


def test_duplicated_parquet_column_names(tmp_path: Path, reader: Callable[..., pa.Table]) -> None:
    path = tmp_path / "dup.parquet"
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array([3])], ["x", "y", "x"])
    pq.write_table(table, path)
    fails(lambda: reader(path), "dup.parquet", "duplicated column names", "'x' (columns 1, 3)")


# --------------------------------------------------------------------------- 2. compression
@pytest.mark.parametrize("name", ["flows.csv", "flows.txt", "flows.csv.bz2"])
def test_gzip_content_is_read_whatever_the_name(
    tmp_path: Path, reader: Callable[..., pa.Table], name: str
) -> None:
    text = "a,b\n" + rows(500)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()))
    got = reader(path)
    assert got.column_names == ["a", "b"] and got.num_rows == 500
    assert got.column("b").to_pylist()[499] == "x499"
    assert csv_header(path) == ["a", "b"]


def test_plain_text_under_a_gz_name_and_bzip2_without_one(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    text = "a,b\n" + rows(300)
    plain = tmp_path / "plain.csv.gz"
    plain.write_text(text)
    assert reader(plain).num_rows == 300
    assert csv_header(plain) == ["a", "b"]
    packed = tmp_path / "packed.csv"
    packed.write_bytes(bz2.compress(text.encode()))
    assert reader(packed).column("b").to_pylist()[-1] == "x299"


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_bytes(gzip.compress(b"a,b\n" + rows(10).encode()) + gzip.compress(rows(5).encode()))
    assert read_table(path).num_rows == 15


def test_truncated_gzip_names_the_last_good_line(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    data = gzip.compress(("a,b\n" + rows(100_000)).encode())
    path = tmp_path / "cut.csv"  # no .gz in the name: found by its bytes
    path.write_bytes(data[: len(data) // 2])
    msg = fails(lambda: reader(path), "cut.csv", "gzip data is truncated or corrupt after line")
    line = int(re.search(r"after line (\d+)", msg).group(1))
    assert 10_000 < line < 100_000


def test_error_paths_reread_gzip_by_its_bytes(tmp_path: Path) -> None:
    # a malformed row and a bad number, in gzip files without .gz names: the helpers that
    # re-read the file to find the line must decompress it too
    lines = ["a,b"] + [f"{i},{i}.5" for i in range(50)]
    lines[21] += ",9"
    bad_row = tmp_path / "row.csv"
    bad_row.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fails(lambda: read_table(bad_row), "row.csv", "malformed CSV at line 22", "expected 2 fields")
    lines[21] = "20,12x"
    bad_num = tmp_path / "num.csv"
    bad_num.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fails(
        lambda: read_all(bad_num, column_types={"b": pa.float64()}),
        "num.csv",
        "column 'b', row 20 (CSV line 22)",
        "'12x'",
        "--na-values",
    )


# --------------------------------------------------------------------------- 3. encoding
def test_latin1_byte_names_the_line_column_byte_and_encoding(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,name\n1,cafe\n2,bar\n3,caf\xe9\n4,x\n")
    fails(
        lambda: reader(path),
        "latin.csv",
        "line 4",
        "column 'name'",
        "byte 0xe9",
        "--encoding",
        "latin-1",
        "re-encode",
    )
    assert reader(path, csv=CsvOptions(encoding="latin-1")).column("name")[2].as_py() == "café"


def test_non_utf8_after_the_first_block(tmp_path: Path) -> None:
    # the first block is valid (the column is inferred as text): the bad byte fails a later one
    path = tmp_path / "late.csv"
    path.write_bytes(("a,b\n" + rows(3000)).encode() + b"7,\xff\xfe\n")
    small = CsvOptions(block_size=4096)
    for read in (read_table, read_all):
        fails(lambda r=read: r(path, csv=small), "late.csv", "line 3002", "column 'b'", "byte 0xff")
    fails(
        lambda: read_all(path, column_types={"b": pa.string()}),
        "line 3002",
        "column 'b'",
        "--encoding",
    )


def test_non_utf8_header(tmp_path: Path) -> None:
    path = tmp_path / "head.csv"
    path.write_bytes(b"id,caf\xe9\n1,2\n")
    for read in (read_table, read_all, csv_header):
        fails(lambda r=read: r(path), "head.csv", "line 1", "byte 0xe9", "--encoding")
    assert read_table(path, csv=CsvOptions(encoding="latin-1")).column_names == ["id", "café"]


def test_other_encodings_and_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("a,b\n1,é\n".encode("utf-16"))
    assert read_table(path, csv=CsvOptions(encoding="utf-16")).to_pylist() == [{"a": 1, "b": "é"}]
    path = tmp_path / "ascii.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xe9\n")
    fails(
        lambda: read_table(path, csv=CsvOptions(encoding="ascii")),
        "ascii.csv",
        "line 3",
        "byte 0xe9",
        "not valid ascii",
        "--encoding",
    )
    with pytest.raises(ValueError, match="--encoding 'klingon'"):
        CsvOptions(encoding="klingon")


# --------------------------------------------------------------------------- 4. separator
@pytest.mark.parametrize(
    ("text", "shown", "fix"),
    [
        ("a;b;c\n1;2;3\n", "'a;b;c' looks ';'-separated", "pass --sep ';'"),
        ("a\tb\tc\n1\t2\t3\n", "looks tab-separated", "pass --sep tab"),
        ("a|b|c\n1|2|3\n", "looks '|'-separated", "pass --sep '|'"),
        ("id,a;b;c;d\n1,2;3;4;5\n", "looks ';'-separated", "pass --sep ';'"),
    ],
)
def test_another_separator_is_named(
    tmp_path: Path, reader: Callable[..., pa.Table], text: str, shown: str, fix: str
) -> None:
    path = tmp_path / "sep.csv"
    path.write_text(text)
    fails(lambda: reader(path), "sep.csv", "the header", shown, fix)
    fails(lambda: csv_header(path), "sep.csv", fix)


def test_comma_file_read_with_semicolon_is_named(tmp_path: Path) -> None:
    path = tmp_path / "comma.csv"
    path.write_text("a,b,c\n1,2,3\n")
    fails(lambda: read_table(path, csv=CsvOptions(sep=";")), "looks ','-separated", "--sep ','")


@pytest.mark.parametrize("sep", [";", "\t", "tab", "TAB", "\\t", "|"])
def test_sep_option_reads_the_file(tmp_path: Path, sep: str) -> None:
    char = {"tab": "\t", "TAB": "\t", "\\t": "\t"}.get(sep, sep)
    path = tmp_path / "ok.csv"
    path.write_text(char.join(["a", "b", "label"]) + "\n" + char.join(["1", "2.5", "x"]) + "\n")
    opts = CsvOptions(sep=sep)
    for read in (read_table, read_all):
        assert read(path, csv=opts).to_pylist() == [{"a": 1, "b": 2.5, "label": "x"}]
    assert csv_header(path, csv=opts) == ["a", "b", "label"]


def test_separator_like_characters_that_are_not_separators(tmp_path: Path) -> None:
    path = tmp_path / "fine.csv"
    path.write_text('"x;y;z",b|c,d\n1,2,3\n')  # quoted, or one '|' among commas
    assert read_table(path).column_names == ["x;y;z", "b|c", "d"]
    with pytest.raises(ValueError, match="--sep ';;'"):
        CsvOptions(sep=";;")


# --------------------------------------------------------------------------- 5. NUL bytes
def test_nul_bytes_are_binary_not_an_empty_file(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    path = tmp_path / "zeros.csv"
    path.write_bytes(b"\x00" * 4096)
    msg = fails(
        lambda: reader(path),
        "zeros.csv",
        "holds NUL bytes (binary data) at byte 0",
        "not a text CSV file",
        "--encoding utf-16",
        ".parquet name",
    )
    assert "empty" not in msg
    later = tmp_path / "later.csv"
    later.write_bytes(b"a,b\n1,2\n\x00\x00\n")
    fails(lambda: reader(later), "later.csv", "at byte 8")


def test_utf16_and_parquet_under_a_csv_name(tmp_path: Path) -> None:
    u16 = tmp_path / "u16.csv"
    u16.write_bytes("a,b\n1,2\n".encode("utf-16"))
    fails(lambda: read_table(u16), "u16.csv", "NUL bytes", "--encoding utf-16", "byte-order mark")
    assert read_all(u16, csv=CsvOptions(encoding="utf-16")).to_pylist() == [{"a": 1, "b": 2}]
    pqf = tmp_path / "really_parquet.csv"
    pq.write_table(pa.table({"a": [1, 2]}), pqf)
    fails(lambda: csv_header(pqf), "really_parquet.csv", "NUL bytes", "'PAR1'", ".parquet name")


# --------------------------------------------------------------------------- 6. block size
def test_line_longer_than_the_block_names_line_and_block_size(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("a,b\n1,2\n3," + "x" * 5000 + "\n4,5\n")  # line 3: 5003 bytes
    small = CsvOptions(block_size=1000)
    msg = fails(
        lambda: reader(path, csv=small),
        "wide.csv",
        "line 3",
        "5003 bytes",
        "block size (1000 bytes)",
        "--block-size 16384",
    )
    assert "straddl" not in msg
    assert reader(path, csv=CsvOptions(block_size=16384)).num_rows == 3


def test_long_quoted_field_with_line_breaks(tmp_path: Path) -> None:
    field = ("y" * 50 + "\n") * 40  # 2040 bytes over 40 lines, each shorter than the block
    path = tmp_path / "note.csv"
    path.write_text(f'a,b\n1,2\n3,"{field}"\n4,5\n')
    for read in (read_table, read_all):
        fails(
            lambda r=read: r(path, csv=CsvOptions(block_size=1000)),
            "note.csv",
            "line 3",
            "quoted field (with line breaks)",
            "--block-size 4096",
        )
    got = read_table(path, csv=CsvOptions(block_size=4096))
    assert got.column("b").to_pylist() == ["2", field, "5"]


def test_unclosed_quote_longer_than_the_block(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    path = tmp_path / "quote.csv"
    path.write_text("a,b\n" + rows(40) + '7,"oops\n' + rows(2000, 40))  # quote on line 42
    fails(
        lambda: reader(path, csv=CsvOptions(block_size=1000)),
        "quote.csv",
        "line 42",
        "quote opened here is never closed",
        "block size (1000 bytes)",
    )


@pytest.mark.parametrize("n_rows", [30, 200_000])  # inside one block, and past 1 MiB
def test_unclosed_quote_never_loses_rows_silently(
    tmp_path: Path, reader: Callable[..., pa.Table], n_rows: int
) -> None:
    # pyarrow's default reading drops the rest of the block after an unclosed quote, or
    # reads it into one field: both must be an error naming the line
    half = n_rows // 2
    path = tmp_path / "quote.csv"
    path.write_text("a,b\n" + rows(half) + '7,"oops\n' + rows(n_rows - half, half))
    fails(
        lambda: reader(path),
        "quote.csv",
        f"line {half + 2}",
        "quote opened here is never closed",
        "close or remove the quote",
    )


def test_unclosed_quote_in_a_numeric_column(tmp_path: Path) -> None:
    path = tmp_path / "num.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}.5\n" for i in range(20)) + '7,"8\n9,1.5\n')
    fails(
        lambda: read_all(path, column_types={"b": pa.float64()}),
        "num.csv",
        "line 22",
        "never closed",
    )


def test_quoted_line_breaks_across_a_block_boundary_are_read(tmp_path: Path) -> None:
    head = rows(80)  # ~600 bytes: the multi-line field straddles the 1000-byte boundary
    path = tmp_path / "multi.csv"
    path.write_text("a,b\n" + head + '7,"multi\nline\nvalue"\n' + rows(300, 80))
    for read in (read_table, read_all):
        got = read(path, csv=CsvOptions(block_size=700))
        assert got.num_rows == 381
        assert got.column("b")[80].as_py() == "multi\nline\nvalue"


# --------------------------------------------------------------------------- 7. NA tokens
def test_default_na_values() -> None:
    for token in ("", "?", "-", "--", "n/a", "N/A", "NA", "na", "#N/A", "null", "NULL", "None"):
        assert token in DEFAULT_NA_VALUES
    assert "none" in DEFAULT_NA_VALUES and "<NA>" in DEFAULT_NA_VALUES
    assert "nan" not in DEFAULT_NA_VALUES and "NaN" not in DEFAULT_NA_VALUES
    assert CsvOptions().na_values == DEFAULT_NA_VALUES
    assert CsvOptions(na_values=()).null_values == ("",)


def test_na_tokens_keep_a_numeric_column_numeric(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    values = [str(i / 4) for i in range(200)]
    for i, token in zip((5, 17, 33, 150), ("n/a", "-", "?", "NA"), strict=True):
        values[i] = token
    path = tmp_path / "na.csv"
    path.write_text("x,kind\n" + "".join(f"{v},k{i % 3}\n" for i, v in enumerate(values)))
    got = reader(path)
    assert pa.types.is_floating(got.schema.field("x").type)  # not text: no one-hot blow-up
    x = got.column("x").to_pylist()
    assert [i for i, v in enumerate(x) if v is None] == [5, 17, 33, 150]
    _, reasons = find_bad_rows(got, ["x"])
    assert reasons[5] == "column 'x': missing value"


def test_empty_and_na_category_fields_are_nulls(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("n,proto\n1,tcp\n2,\n3,NA\n4,null\n5,udp\n6,nan\n")
    assert reader(path).column("proto").to_pylist() == ["tcp", None, None, None, "udp", "nan"]
    # the score path reads categories as strings: same nulls
    typed = read_all(path, column_types={"proto": pa.string()})
    assert typed.column("proto").null_count == 3


def test_na_values_option(tmp_path: Path, reader: Callable[..., pa.Table]) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text("x,c\n1.5,a\n,b\nn/a,missing\n2.5,NA\n")
    none = reader(path, csv=CsvOptions(na_values=()))  # only the empty field is missing
    assert none.column("x").to_pylist() == ["1.5", None, "n/a", "2.5"]
    assert none.column("c").to_pylist() == ["a", "b", "missing", "NA"]
    own = reader(path, csv=CsvOptions(na_values=("missing", "n/a")))
    assert own.column("x").to_pylist() == [1.5, None, None, 2.5]
    assert own.column("c").to_pylist() == ["a", "b", None, "NA"]
    with pytest.raises(ValueError, match="--na-values"):
        CsvOptions(na_values="n/a")  # a string, not a list of strings


def test_unknown_token_in_a_typed_numeric_column_suggests_na_values(tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text("x\n1\n2\nn/a\n3\n")
    assert read_all(path, column_types={"x": pa.float64()}).column("x").null_count == 1
    fails(
        lambda: read_all(path, column_types={"x": pa.float64()}, csv=CsvOptions(na_values=())),
        "typed.csv",
        "column 'x', row 2 (CSV line 4)",
        "'n/a'",
        "--na-values",
    )


def test_nan_stays_a_nan_float(tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    path.write_text("x\n1\nnan\nNaN\n")
    x = read_table(path).column("x").to_pylist()
    assert x[0] == 1 and math.isnan(x[1]) and math.isnan(x[2])


def test_na_tokens_in_parquet_string_columns(
    tmp_path: Path, reader: Callable[..., pa.Table]
) -> None:
    path = tmp_path / "na.parquet"
    table = pa.table(
        {
            "proto": ["tcp", "n/a", "", "udp"],
            "svc": pa.array(["http", "NA", "dns", "-"]).dictionary_encode(),
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    pq.write_table(table, path)
    got = reader(path)
    assert got.column("proto").to_pylist() == ["tcp", None, None, "udp"]
    assert got.column("svc").to_pylist() == ["http", None, "dns", None]
    assert got.column("x").to_pylist() == [1.0, 2.0, 3.0, 4.0]
    # read dictionary-encoded (the score path): nulls too
    batches = list(iter_batches(path, dictionary_columns=["proto"]))
    assert pa.Table.from_batches(batches).column("proto").to_pylist() == ["tcp", None, None, "udp"]
    kept = reader(path, csv=CsvOptions(na_values=()))
    assert kept.column("proto").to_pylist() == ["tcp", "n/a", None, "udp"]


# --------------------------------------------------------------------------- options, unchanged
def test_plain_files_read_as_before(tmp_path: Path, reader: Callable[..., pa.Table]) -> None:
    path = tmp_path / "plain.csv"
    path.write_text('a,b,c\n1,2.5,"x, quoted"\n3,4.5,y\n')
    assert reader(path).to_pylist() == [
        {"a": 1, "b": 2.5, "c": "x, quoted"},
        {"a": 3, "b": 4.5, "c": "y"},
    ]
    fails(lambda: reader(tmp_path / "missing.csv"), "missing.csv", "no such file")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    fails(lambda: reader(empty), "empty.csv", "empty")


def test_csv_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--block-size 0"):
        CsvOptions(block_size=0)
    with pytest.raises(ValueError, match="--sep"):
        CsvOptions(sep='"')
    assert CsvOptions(sep="\\t") == CsvOptions(sep="\t")
    with pytest.raises(TypeError, match="CsvOptions"):
        read_table("x.csv", csv={"sep": ";"})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_read_table_progress_bar_reads_the_same_table(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reading bar moves by bytes (CSV, compressed bytes for gzip) or by row groups
    (Parquet) and the table read is the same, with the missing-value tokens as nulls."""
    import pyarrow.csv as pacsv

    n = 30_000
    t = pa.table({"a": list(range(n)), "s": ["x", "NA", "y"] * (n // 3)})
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(t, path, row_group_size=7_000)  # 5 row groups
    else:
        pacsv.write_csv(t, tmp_path / "plain.csv")
        data = (tmp_path / "plain.csv").read_bytes()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    quiet = read_table(path)
    assert capsys.readouterr().err == ""
    shown = read_table(path, progress=True)
    err = capsys.readouterr().err
    assert f"reading {name}" in err
    assert shown.equals(quiet) and shown.column("s").null_count == n // 3
    total = "rows" if name.endswith(".parquet") else "B"
    assert total in err


def test_writer_plain_columns_skip_dictionary_encoding(tmp_path: Path) -> None:
    from anoean.data.tables import AtomicTableWriter

    batch = pa.record_batch({"a": [1, 1, 2] * 100, "score": [0.1 * i for i in range(300)]})
    with AtomicTableWriter(tmp_path / "o.parquet", plain_columns=["score"]) as w:
        w.write(batch)
    meta = pq.ParquetFile(tmp_path / "o.parquet").metadata.row_group(0)
    enc = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(2)}
    assert "RLE_DICTIONARY" in enc["a"] and "RLE_DICTIONARY" not in enc["score"]
    assert pq.read_table(tmp_path / "o.parquet").to_batches()[0].equals(batch)
