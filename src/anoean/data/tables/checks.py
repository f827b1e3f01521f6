"""The checks every CSV read makes besides pyarrow's own: binary data and a header that
looks separated by another character (on the first block, up front), column names that are
not valid text, binary columns, and values holding a line break because of an unclosed
quote."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.tables.csv_errors import _encoding_error, _short, _unclosed_quote
from anoean.data.tables.formats import (
    _HEAD_BYTES,
    _SEPARATORS,
    CsvOptions,
    DataError,
    _is_text,
    _open,
    _show_sep,
)
from anoean.data.tables.scan import _compressed_error, _scan_rows


def _check_head(path: Path, opts: CsvOptions) -> None:
    """Up-front checks on the first block: binary data, and a header that looks
    separated by another character than ``opts.sep``."""
    try:
        with _open(path) as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise _compressed_error(path, exc) from exc
    if not head:
        return  # empty: pyarrow says so
    if not opts._wide:
        nul = head.find(b"\x00")
        if nul >= 0:
            line = head.count(b"\n", 0, nul) + 1
            hint = ""
            if head.startswith(b"PAR1"):
                hint = "; it starts with 'PAR1', so it is probably a Parquet file"
            elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
                hint = "; it starts with a UTF-16 byte-order mark"
            raise DataError(
                f"{path}: holds NUL bytes (binary data) at byte {nul} (line {line}): not a "
                "text CSV file (a "
                f"UTF-16 file needs --encoding utf-16; a Parquet file needs a .parquet name)"
                f"{hint}"
            )
    text = head.decode(opts._codec, errors="replace").lstrip("\ufeff")
    if "\n" not in text and len(head) == _HEAD_BYTES:
        return  # a header longer than the block: not worth guessing
    line = text.split("\n", 1)[0].rstrip("\r")
    bare = re.sub(r'"(?:[^"]|"")*"', "", line)  # separators inside quotes do not count
    n_sep = bare.count(opts.sep)
    counts = {c: bare.count(c) for c in _SEPARATORS if c != opts.sep}
    other = max(counts, key=lambda c: counts[c])
    n = counts[other]
    if (n_sep == 0 and n >= 1) or (n >= 2 and n > 2 * n_sep):
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise DataError(
            f"{path}: the header {shown!r} looks {_show_sep(other)}-separated, not "
            f"{_show_sep(opts.sep)}-separated; pass --sep {_show_sep(other)}"
        )


def _check_binary(
    path: Path, schema: pa.Schema, column_types: dict[str, Any], opts: CsvOptions
) -> None:
    """pyarrow reads a CSV column holding invalid UTF-8 as binary: name the line instead."""
    for field in schema:
        if pa.types.is_binary(field.type) and field.name not in column_types:
            raise _encoding_error(path, opts, column=field.name)


def _names(path: Path, schema: pa.Schema, opts: CsvOptions) -> list[str]:
    """The column names; a header that is not valid UTF-8 fails only here, when read."""
    try:
        return list(schema.names)
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, opts, exc) from exc


def _has_line_break(col: Any) -> bool:
    """Whether a CSV text column holds a value with a line break (one memchr-like pass
    over the value bytes; exact check only on a hit)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is not None and (np.frombuffer(data, np.uint8) == 10).any():
            if pc.any(pc.match_substring(chunk, "\n")).as_py():
                return True
    return False


def _check_line_breaks(
    path: Path, data: Any, opts: CsvOptions, block_size: int, row_offset: int = 0
) -> bool:
    """Refuse an unclosed quote, which makes pyarrow read the rest of the file (or of the
    block) into one field. Only when a text value holds a line break is the file scanned
    for an odd number of quotes. True when that scan found the quotes balanced (the line
    breaks are meant; no need to look again)."""
    for name, col in zip(data.schema.names, data.columns, strict=True):
        if not (_is_text(col.type) and _has_line_break(col)):
            continue
        scan = _scan_rows(path, block_size)  # error path from here
        if scan["unclosed"] is None:
            return True
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        hits = pc.match_substring(col, "\n").to_numpy(zero_copy_only=False)
        row = int(np.flatnonzero(hits)[0])
        raise _unclosed_quote(
            path, scan, f"row {row_offset + row}, column {name!r}: {_short(col[row].as_py())}"
        )
    return False
