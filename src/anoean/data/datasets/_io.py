"""Reading data files: gzip with precise errors, and fast CSV with line-accurate errors.

The fast path is one zlib pass and pyarrow's multi-threaded CSV reader. Only when that fails
does a slower diagnostic pass run, to name the file, line and column of the first problem.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

_GZIP_MAGIC = b"\x1f\x8b"
_FEED = 1 << 20
# what pyarrow's CSV reader accepts as numbers (nan/inf are caught separately)
_INT_RE = r"^[+-]?[0-9]+$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(nan|inf|infinity)$"


def read_bytes(path: Path) -> bytes:
    """The content of a file, decompressed when it is gzip (detected by its magic bytes).

    Raises
    ------
    ValueError
        A truncated or corrupt gzip stream, naming the file and the line where data stops.
    """
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    parts: list[bytes] = []
    data = raw
    while True:  # a gzip file may hold several members, one after the other
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pos = 0
        try:
            # fed in pieces so that an error can say how far the good data went
            while pos < len(data) and not d.eof:
                parts.append(d.decompress(data[pos : pos + _FEED]))
                pos += _FEED
        except zlib.error as exc:
            raise ValueError(
                f"{path}: corrupt gzip data ({exc}) in line {_line_of_end(parts)} of the "
                "uncompressed content; the file is damaged, delete it and fetch it again"
            ) from exc
        if not d.eof:
            raise ValueError(
                f"{path}: truncated gzip file: the data stops in line {_line_of_end(parts)} "
                "of the uncompressed content; the file is incomplete, delete it and fetch "
                "it again"
            )
        data = d.unused_data + data[pos:]
        if not data.strip(b"\x00"):  # gzip tolerates trailing zero padding
            break
        if data[:2] != _GZIP_MAGIC:
            raise ValueError(
                f"{path}: {len(data)} bytes of trailing garbage after the gzip data "
                f"(after line {_line_of_end(parts)})"
            )
    return b"".join(parts)


def _line_of_end(parts: list[bytes]) -> str:
    """Where the good data ends: a line for text, with the byte offset for binary files."""
    lines = sum(p.count(b"\n") for p in parts) + 1
    return f"{lines} (byte {sum(len(p) for p in parts):,})"


def read_csv(
    data: bytes,
    path: Path,
    names: Sequence[str],
    types: dict[str, pa.DataType],
) -> pa.Table:
    """Parse header-less comma-separated ``data`` with the given column names and types.

    Every field is required (an empty field is an error, not a null); blank lines are
    skipped. Quotes have no special meaning, as in the KDD files.

    Raises
    ------
    ValueError
        Naming ``path``, the line and the column: a row with the wrong number of fields, a
        value that is not a number in a numeric column, or NaN/infinity.
    """
    read = pacsv.ReadOptions(column_names=list(names), use_threads=True)
    parse = pacsv.ParseOptions(delimiter=",", quote_char=False, newlines_in_values=False)
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        _diagnose(data, path, names, types, str(exc))
        raise ValueError(f"{path}: cannot parse as CSV: {exc}") from exc
    for name, t in types.items():
        if pa.types.is_floating(t):
            col = table.column(name)
            bad = pc.invert(pc.is_finite(col))
            if pc.any(bad).as_py():
                row = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
                line = row_to_line(data, row)
                raise ValueError(
                    f"{path}, line {line}, column {names.index(name) + 1} ({name}): "
                    f"value {col[row].as_py()!r} is not a finite number"
                )
    return table


def _content_lines(data: bytes) -> list[int]:
    """1-based line numbers of the non-blank lines (the rows pyarrow reads)."""
    return [i for i, line in enumerate(data.split(b"\n"), 1) if line.strip(b"\r")]


def row_to_line(data: bytes, row: int) -> int:
    return _content_lines(data)[row]


def _diagnose(
    data: bytes, path: Path, names: Sequence[str], types: dict[str, pa.DataType], arrow_message: str
) -> None:
    """Raise a ValueError naming the first bad line; return if none is found."""
    expected = len(names)
    for i, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line:
            continue
        n = line.count(b",") + 1
        if n != expected:
            raise ValueError(
                f"{path}, line {i}: expected {expected} comma-separated fields, found {n}: "
                f"{line[:120].decode('utf-8', 'replace')!r}"
            )
    # every row has the right width: the problem is a value; read all as text to find it
    as_text = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=list(names)),
        parse_options=pacsv.ParseOptions(quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=[],
            strings_can_be_null=False,
            check_utf8=False,
        ),
    )
    first: tuple[int, int] | None = None
    for j, name in enumerate(names):
        t = types.get(name)
        if t is None or not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            continue
        pattern = _INT_RE if pa.types.is_integer(t) else _FLOAT_RE
        ok = pc.match_substring_regex(as_text.column(name), pattern, ignore_case=True)
        bad = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
        if bad.size and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), j)
    if first is None:
        return
    row, j = first
    value = as_text.column(names[j])[row].as_py()
    kind = "whole number" if pa.types.is_integer(types[names[j]]) else "number"
    raise ValueError(
        f"{path}, line {row_to_line(data, row)}, column {j + 1} ({names[j]}): "
        f"expected a {kind}, found {value!r}"
    )
