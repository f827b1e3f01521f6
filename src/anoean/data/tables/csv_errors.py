"""Explaining a failed CSV read: pyarrow's error turned into a :class:`DataError` that names
the line (and the column, the byte or the option that fixes it): an encoding error, a
truncated compressed file, a row longer than the block size, an unclosed quote, a malformed
row, a non-numeric value in a numeric column. Also :func:`_header`, the column names as
pyarrow reads them, whose failures are explained here too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.tables.formats import (
    _ARROW_BLOCK_SIZE,
    _NUMBER_RE,
    CsvOptions,
    DataError,
    _check_names,
    _convert_options,
    _open,
    _options,
    _parse_options,
    _read_options,
    where,
)
from anoean.data.tables.scan import _compressed_error, _scan_rows, _undecodable


def _encoding_error(
    path: Path, opts: CsvOptions, exc: Exception | None = None, column: str | None = None
) -> DataError:
    """Name the line and the byte that is not valid in the file's encoding (error path)."""
    if column is None and exc is not None:
        m = re.search(r"column #(\d+)", str(exc))
        if m:
            try:
                names = _header(path, opts)
            except DataError:
                names = []
            i = int(m.group(1))
            column = names[i] if i < len(names) else None
    col = f", column {column!r}" if column is not None else ""
    utf8 = opts._codec in ("utf-8", "utf-8-sig")
    fix = (
        "pass --encoding with the file's encoding (e.g. --encoding latin-1) or re-encode the "
        "file as UTF-8"
        if utf8
        else "pass --encoding with the file's actual encoding, or re-encode the file as UTF-8 "
        "(the default)"
    )
    found = _undecodable(path, opts._codec)
    if found is None:
        return DataError(f"{path}: text that is not valid {opts.encoding}{col}: {exc}; {fix}")
    off, line, byte = found
    return DataError(
        f"{path}: line {line}{col}: byte 0x{byte:02x} (at byte {off}) is not valid "
        f"{opts.encoding} text; {fix}"
    )


def _unclosed_quote(path: Path, scan: dict[str, Any], found: str) -> DataError:
    line = scan["spans"] or scan["unclosed"]
    return DataError(
        f"{path}: line {line}: a quote opened here is never closed (the file holds an odd "
        f"number of '\"'), so the lines after it were read into one field ({found}) and lost "
        "as rows; close or remove the quote"
    )


def _short(value: Any, n: int = 60) -> str:
    text = str(value)
    return repr(text[:n] + "..." if len(text) > n else text)


def _block_error(path: Path, exc: Exception, block_size: int) -> DataError:
    """A row that does not fit in one CSV block: name its line and ``--block-size``."""
    scan = _scan_rows(path, block_size)
    if scan["unclosed"] is not None:
        return DataError(
            f"{path}: line {scan['spans'] or scan['unclosed']}: a quote opened here is never "
            "closed (the file holds an odd number of '\"'), so the rest of the file reads as "
            f"one field, longer than the CSV block size ({block_size} bytes); close or remove "
            "the quote"
        )
    for key, what in (("long", "a line"), ("long_quote", "a quoted field (with line breaks)")):
        if scan[key] is not None:
            line, n = scan[key]
            return DataError(
                f"{path}: line {line}: {what} of {n} bytes starts here, longer than the CSV "
                f"block size ({block_size} bytes); if it is meant, pass --block-size "
                f"{1 << (2 * n - 1).bit_length()} (twice its length, rounded up); if not, look "
                "for a missing line break or a stray quote there"
            )
    return DataError(
        f"{path}: a row or quoted field is longer than the CSV block size ({block_size} "
        f"bytes), e.g. an unclosed quote; pass --block-size BYTES larger than the longest row "
        f"(the file is {scan['size']} bytes): {exc}"
    )


def _csv_parse_error(
    path: Path, exc: Exception, opts: CsvOptions | None = None, block_size: int = _ARROW_BLOCK_SIZE
) -> DataError:
    """Explain a CSV parse failure with the line number (re-reading on one thread to get it)."""
    import pyarrow.csv as pacsv

    opts = _options(opts)
    found: list[Any] = []

    def handler(row: Any) -> str:
        found.append(row)
        return "error"

    try:
        with _open(path) as f:
            reader = pacsv.open_csv(
                f,
                read_options=_read_options(opts, block_size, use_threads=False),
                parse_options=_parse_options(opts, invalid_row_handler=handler),
                convert_options=_convert_options({}, opts.null_values),
            )
            for _ in reader:
                pass
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
        pass
    if found:
        r = found[0]
        return DataError(
            f"{path}: malformed CSV at line {r.number}: expected {r.expected_columns} fields, "
            f"got {r.actual_columns}: {r.text[:200]!r}"
        )
    return DataError(f"{path}: cannot parse as CSV: {exc}")


def _conversion_error(
    path: Path,
    exc: Exception,
    column_types: dict[str, Any],
    opts: CsvOptions | None = None,
    block_size: int = _ARROW_BLOCK_SIZE,
) -> DataError:
    """Locate a value that could not be converted to a number (error path only)."""
    import pyarrow.csv as pacsv

    opts = _options(opts)
    m = re.search(r"column #(\d+)", str(exc))
    try:
        header = _header(path, opts, block_size)
    except DataError:
        header = []
    if m and int(m.group(1)) < len(header):
        name = header[int(m.group(1))]
        try:
            with _open(path) as f:
                col = pacsv.read_csv(
                    f,
                    read_options=_read_options(opts, block_size),
                    parse_options=_parse_options(opts),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=[name],
                        column_types={name: pa.string()},
                        null_values=list(opts.null_values),  # as in the failed read
                        strings_can_be_null=True,
                    ),
                ).column(name)
        except _CSV_ERRORS:
            return DataError(f"{path}: column {name!r}: {exc}")
        ok = pc.or_kleene(
            pc.match_substring_regex(col, _NUMBER_RE, ignore_case=True), pc.is_null(col)
        )
        bad = np.flatnonzero(~pc.fill_null(ok, True).to_numpy(zero_copy_only=False))
        if bad.size:
            row = int(bad[0])
            value = col[row].as_py()
            if "\n" in value:  # an unclosed quote read the next lines into this field?
                scan = _scan_rows(path, block_size)
                if scan["unclosed"] is not None:
                    return _unclosed_quote(
                        path, scan, f"row {row}, column {name!r}: {_short(value)}"
                    )
            return DataError(
                f"{path}: column {name!r}, {where(row, 'csv')}: non-numeric value "
                f"{value!r} in a numeric column (if it means a missing value, "
                "add it to --na-values)"
            )
        return DataError(f"{path}: column {name!r}: {exc}")
    return DataError(f"{path}: {exc}")


def _explain_csv_error(
    path: Path,
    exc: Exception,
    column_types: dict[str, Any],
    opts: CsvOptions | None = None,
    block_size: int = _ARROW_BLOCK_SIZE,
) -> DataError:
    opts = _options(opts)
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or "invalid UTF8" in text:
        return _encoding_error(path, opts, exc)
    if isinstance(exc, OSError):
        return _compressed_error(path, exc)
    if "straddl" in text:
        return _block_error(path, exc, block_size)
    if "Empty CSV file" in text:
        return DataError(f"{path}: the file is empty (no header, no data rows)")
    try:  # duplicated names first: the other explanations look columns up by name
        _check_names(path, _header(path, opts, block_size))
    except DataError as dup:
        if "duplicated" in str(dup):
            return dup
    if "conversion error" in text:
        return _conversion_error(path, exc, column_types, opts, block_size)
    return _csv_parse_error(path, exc, opts, block_size)


_CSV_ERRORS = (pa.ArrowInvalid, UnicodeDecodeError, OSError)


def _header(
    path: Path, opts: CsvOptions, block_size: int = _ARROW_BLOCK_SIZE, *, explain: bool = False
) -> list[str]:
    """The column names as pyarrow reads them (one block), not checked for duplicates.

    A failure is explained as by :func:`read_table` with ``explain``, else (on error paths)
    reported as it is."""
    import pyarrow.csv as pacsv

    try:
        with _open(path) as f:
            return list(
                pacsv.open_csv(
                    f,
                    read_options=_read_options(opts, block_size),
                    parse_options=_parse_options(opts),
                    convert_options=_convert_options({}, opts.null_values),
                ).schema.names
            )
    except _CSV_ERRORS as exc:
        if explain:
            raise _explain_csv_error(path, exc, {}, opts, block_size) from exc
        raise DataError(f"{path}: cannot read the CSV header: {exc}") from exc
