"""Reading and writing table files (CSV, Parquet) for the command line, with pyarrow.

* :func:`read_table` reads a whole file (for ``fit``, ``evaluate``, ``report``);
  :func:`iter_batches` streams one in bounded-memory record batches (for ``score``);
  :func:`csv_header` reads only the column names of a CSV file. All three take a
  :class:`CsvOptions` (separator, encoding, missing-value tokens, block size).
* :func:`parse_labels` turns a label column into 0 (normal) / 1 (anomaly).
* :func:`find_bad_rows` finds the rows a fitted preprocessor cannot encode (missing, NaN or
  infinite numbers, unknown categories under the strict policy), vectorised, with a reason
  per bad row.
* :class:`AtomicTableWriter` writes to a temporary file next to the destination and renames
  it into place only when everything was written, so a failure never leaves a half-written
  output file.

Every problem raises :class:`DataError` (a ``ValueError``) whose message names the file, and
where it applies the column and the row. Rows are numbered from 0 in data order (the first
row after a CSV header is row 0); for CSV files the line number is given too, counting the
header as line 1 (exact unless a quoted field spans several lines). Where an option fixes
the problem the message names it as the command line spells it (``--sep``, ``--encoding``,
``--block-size``, ``--na-values``); in Python these are the :class:`CsvOptions` fields
``sep``, ``encoding``, ``block_size`` and ``na_values``.

**Compression** is recognised by the file's first bytes, not by its name: gzip (``1f 8b``)
and bzip2 (``BZh``) are decompressed whatever the file is called, and a ``.csv.gz`` file that
holds plain text is read as plain text.

**Missing values.** In CSV files the empty field is always missing, and so is every token
of :attr:`CsvOptions.na_values` (by default :data:`DEFAULT_NA_VALUES`), in every column:
they are read as nulls, whatever the column's type. The same tokens, and the empty string,
are nulls in the string columns of Parquet files. Tokens are matched exactly (case and
surrounding spaces count). ``na_values=()`` leaves only the empty field missing. A null is
never guessed into a value: the rest of the package refuses it (fitting stops naming the
column and the row; scoring marks the row unscorable). ``nan``/``NaN`` are not missing-value
tokens: in a numeric column they are NaN floats, which follow the same refusal.

*Why "NA" is a default token.* "NA" can be a real category (a region code for North America,
Namibia's country code), but it is also how R, pandas and many exports write a missing
value. Leaving it out would turn a numeric column holding a few "NA"s into a text column
that is one-hot encoded into as many features as it has distinct values, silently; counting
it as missing instead makes a real "NA" category fail loudly (at fit, naming the column and
the row), and the fix is one option: ``na_values`` without "NA" (on the command line, a
``--na-values`` list without it). The same reasoning holds for "-", "none" and "None".
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger("anoean")

#: label spellings accepted without a mapping (compared case-insensitively)
NORMAL_TOKENS = ("0", "false", "normal")
ANOMALY_TOKENS = ("1", "true", "anomaly")

#: rows per streamed batch: ~15 MB of float32 features for 120 features, so the few
#: batches in flight stay far below a 1 GB budget, and large enough that per-batch
#: overheads vanish
DEFAULT_BATCH_ROWS = 32768

#: tokens read as a missing value (null) in every column of a CSV file and in the string
#: columns of a Parquet file; see the module docstring for why "NA" is one of them. "nan"
#: and "NaN" are not: they are NaN floats, refused by the same missing-value policy.
DEFAULT_NA_VALUES: tuple[str, ...] = (
    "",
    "?",
    "-",
    "--",
    "n/a",
    "N/A",
    "NA",
    "na",
    "#N/A",
    "null",
    "NULL",
    "None",
    "none",
    "<NA>",
)

# a number as pyarrow's string -> float cast accepts it (only used to locate a bad value)
_NUMBER_RE = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|nan|inf|infinity)\s*$"

#: bytes read from the start of a CSV file (decompressed) for the up-front checks
_HEAD_BYTES = 1 << 16
#: pyarrow's CSV block size when none is given (``pyarrow.csv.ReadOptions().block_size``)
_ARROW_BLOCK_SIZE = 1 << 20
#: separators a header is checked against (besides the one in use)
_SEPARATORS = (",", ";", "\t", "|")
_SEP_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


class DataError(ValueError):
    """A data file cannot be used as given; the message names the file, column and row."""


@dataclasses.dataclass(frozen=True)
class CsvOptions:
    """How CSV files are read (and which strings are missing values, in Parquet files too).

    Parameters
    ----------
    sep : str
        The field separator, one character; ``"\\t"``, ``"tab"`` (and the two characters
        ``\\t`` a shell passes for ``--sep '\\t'``) mean a tab; the words ``"comma"``,
        ``"semicolon"`` and ``"pipe"`` are accepted too. Command line: ``--sep``.
    encoding : str
        The text encoding, any name Python's :mod:`codecs` knows (``"latin-1"``,
        ``"utf-16"``, ``"cp1252"``). UTF-8 is decoded by pyarrow itself; other encodings
        are transcoded to UTF-8 first (slower). Command line: ``--encoding``.
    na_values : sequence of str
        Tokens read as missing values (nulls) in every column, besides the empty field,
        which is always missing (``()`` means: only the empty field). Default
        :data:`DEFAULT_NA_VALUES`. Command line: ``--na-values``.
    block_size : int or None
        Bytes the CSV reader takes at a time; a row (or a quoted field) must fit in one
        block. ``None``: 1 MiB for :func:`read_table`, about ``150 * batch_rows`` bytes
        (at least 1 MiB) for :func:`iter_batches`. Command line: ``--block-size``.

    Raises
    ------
    ValueError
        An option that cannot work (a separator of several characters, an unknown
        encoding, a block size under 1 byte), naming the option.

    Examples
    --------
    >>> CsvOptions(sep="tab").sep
    '\\t'
    >>> CsvOptions(na_values=["n/a"]).null_values
    ('', 'n/a')
    >>> CsvOptions(sep=";;")
    Traceback (most recent call last):
    ...
    ValueError: --sep ';;': the separator must be one character (or "tab")
    """

    sep: str = ","
    encoding: str = "utf-8"
    na_values: Sequence[str] = DEFAULT_NA_VALUES
    block_size: int | None = None

    def __post_init__(self) -> None:
        sep = _SEP_WORDS.get(self.sep.lower(), self.sep) if isinstance(self.sep, str) else None
        if sep is None or len(sep) != 1 or sep in '"\r\n':
            raise ValueError(
                f'--sep {self.sep!r}: the separator must be one character (or "tab")'
                + ("; it cannot be a quote or a line break" if sep and len(sep) == 1 else "")
            )
        try:
            text_codec = getattr(codecs.lookup(self.encoding), "_is_text_encoding", True)
        except (LookupError, TypeError):
            text_codec = False
        if not text_codec:
            raise ValueError(
                f"--encoding {self.encoding!r}: unknown text encoding (try utf-8, latin-1, "
                "cp1252 or utf-16)"
            )
        try:
            values = None if isinstance(self.na_values, str) else tuple(self.na_values)
        except TypeError:
            values = None
        if values is None or not all(isinstance(v, str) for v in values):
            raise ValueError(
                f"--na-values {self.na_values!r}: give a list of strings, e.g. ('n/a', '-')"
            )
        bs = self.block_size
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
            raise ValueError(f"--block-size {bs!r}: give a number of bytes, at least 1")
        object.__setattr__(self, "sep", sep)
        object.__setattr__(self, "na_values", values)

    @property
    def null_values(self) -> tuple[str, ...]:
        """The strings read as nulls: the empty field, then :attr:`na_values` (no repeats)."""
        return tuple(dict.fromkeys(("", *self.na_values)))

    @property
    def _codec(self) -> str:
        return codecs.lookup(self.encoding).name

    @property
    def _arrow_encoding(self) -> str:
        # pyarrow decodes "utf8" natively (and skips a UTF-8 byte-order mark); any other
        # name goes through a slower Python transcoder
        return "utf8" if self._codec in ("utf-8", "utf-8-sig") else self.encoding

    @property
    def _wide(self) -> bool:
        """An encoding whose text holds NUL bytes (UTF-16, UTF-32)."""
        return self._codec.startswith(("utf-16", "utf-32"))


def _options(csv: CsvOptions | None) -> CsvOptions:
    if csv is None:
        return CsvOptions()
    if not isinstance(csv, CsvOptions):
        raise TypeError(f"csv must be a CsvOptions, not {type(csv).__name__}")
    return csv


def _show_sep(sep: str) -> str:
    return "tab" if sep == "\t" else repr(sep)


# --------------------------------------------------------------------------- formats
def file_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, from the file name (``.csv[.gz]``, ``.parquet``, ``.pq``)."""
    name = Path(path).name.lower()
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".txt", ".txt.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(f"{path}: unknown file type; use a .csv (optionally .gz) or .parquet file name")


def where(row: int, fmt: str) -> str:
    """``row 12`` (Parquet) or ``row 12 (CSV line 14)``."""
    return f"row {row} (CSV line {row + 2})" if fmt == "csv" else f"row {row}"


def _compression(path: Path) -> str | None:
    """``"gzip"``, ``"bz2"`` or None, from the file's magic bytes (never from its name)."""
    with open(path, "rb") as f:
        magic = f.read(10)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if re.match(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)", magic):
        return "bz2"
    return None


def _open(path: Path) -> Any:
    """The file's text as a pyarrow input stream, decompressed if its bytes say so."""
    return pa.input_stream(str(path), compression=_compression(path))


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks; error paths only."""
    with _open(path) as f:
        while chunk := f.read(size):
            yield chunk


def _compressed_error(path: Path, exc: Exception) -> DataError:
    """A decompression failure, with the line where the good text ends (error path)."""
    import bz2
    import zlib

    kind = _compression(path)
    if kind is None:
        return DataError(f"{path}: cannot read the file: {exc}")
    lines, pos = 0, 0

    def fresh() -> Any:
        return zlib.decompressobj(wbits=31) if kind == "gzip" else bz2.BZ2Decompressor()

    dec = fresh()
    try:
        with open(path, "rb") as f:
            while raw := f.read(1 << 20):
                while raw:
                    out = dec.decompress(raw)
                    lines += out.count(b"\n")
                    pos += len(out)
                    if not dec.eof:
                        break
                    raw = dec.unused_data  # a concatenated member, if any
                    dec = fresh()
    except (zlib.error, OSError, EOFError, ValueError):
        pass
    return DataError(
        f"{path}: the {kind} data is truncated or corrupt after line {lines} (byte {pos} of "
        f"the decompressed text): {exc}"
    )


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


def _check_names(path: Path, names: Sequence[str]) -> None:
    """Refuse duplicated column names (a later lookup by name would be ambiguous)."""
    if len(set(names)) == len(names):
        return
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        seen.setdefault(name, []).append(i + 1)
    dups = [
        f"{name!r} (columns {', '.join(map(str, pos))})"
        for name, pos in seen.items()
        if len(pos) > 1
    ]
    empty = " (an empty name: a missing name or a separator too many in the header)"
    raise DataError(
        f"{path}: duplicated column names: {'; '.join(dups)}, counting columns from 1"
        f"{empty if '' in seen and len(seen['']) > 1 else ''}; every column needs its own "
        "name: rename them in the file"
    )


def _read_options(opts: CsvOptions, block_size: int, **kw: Any) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.ReadOptions(block_size=block_size, encoding=opts._arrow_encoding, **kw)


def _parse_options(opts: CsvOptions, **kw: Any) -> Any:
    import pyarrow.csv as pacsv

    # quote-aware block boundaries: without them an unclosed quote makes pyarrow drop the
    # rest of its block silently, and a quoted line break at a block boundary fails
    return pacsv.ParseOptions(delimiter=opts.sep, newlines_in_values=True, **kw)


def _convert_options(
    column_types: dict[str, pa.DataType], null_values: Sequence[str] = DEFAULT_NA_VALUES
) -> Any:
    """The empty field and the ``null_values`` tokens are nulls, in text columns too."""
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        column_types=column_types,
        null_values=list(dict.fromkeys(("", *null_values))),
        strings_can_be_null=True,
    )


def _undecodable(path: Path, codec: str) -> tuple[int, int, int] | None:
    """(byte offset, line, byte value) of the first byte ``codec`` cannot decode (error path)."""
    dec = codecs.getincrementaldecoder(codec)()
    pos, lines = 0, 1
    try:
        for chunk in _chunks(path):
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as e:
                # e.object is the decoder's pending bytes + this chunk
                off = pos + len(chunk) - len(e.object) + e.start
                return off, lines + chunk.count(b"\n", 0, max(off - pos, 0)), e.object[e.start]
            lines += chunk.count(b"\n")
            pos += len(chunk)
        dec.decode(b"", final=True)
    except UnicodeDecodeError as e:  # a sequence cut short by the end of the file
        return pos - len(e.object) + e.start, lines, e.object[e.start]
    except OSError:
        return None
    return None


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


def _check_binary(
    path: Path, schema: pa.Schema, column_types: dict[str, Any], opts: CsvOptions
) -> None:
    """pyarrow reads a CSV column holding invalid UTF-8 as binary: name the line instead."""
    for field in schema:
        if pa.types.is_binary(field.type) and field.name not in column_types:
            raise _encoding_error(path, opts, column=field.name)


def _scan_rows(path: Path, block_size: int) -> dict[str, Any]:
    """Long lines and long or unclosed quoted fields, vectorised per 1 MiB (error path).

    Quotes are paired in file order (an escaped ``""`` pairs with itself). Returns, each
    None when there is none: ``long`` = (line, bytes) of the first line longer than
    ``block_size``; ``long_quote`` = (line, bytes) of the first quoted field longer than
    ``block_size``; ``spans`` = line of the opening quote of the first quoted field that
    holds a line break; ``unclosed`` = line of the quote left open at the end of the file
    (the file holds an odd number of quotes); and ``size`` = the bytes read.
    """
    out: dict[str, Any] = {"long": None, "long_quote": None, "spans": None, "unclosed": None}
    pos = 0  # file offset of the chunk
    nlines = 0  # line breaks before the chunk
    line_start = 0  # file offset where the current line starts
    pending: tuple[int, int] | None = None  # (offset, line) of a quote still open

    def pair(o_off: np.ndarray, o_line: np.ndarray, c_off: np.ndarray, c_line: np.ndarray) -> None:
        if out["long_quote"] is None:
            big = np.flatnonzero(c_off - o_off > block_size)
            if big.size:
                i = big[0]
                out["long_quote"] = (int(o_line[i]), int(c_off[i] - o_off[i] + 1))
        if out["spans"] is None:
            sp = np.flatnonzero(c_line != o_line)
            if sp.size:
                out["spans"] = int(o_line[sp[0]])

    try:
        for chunk in _chunks(path):
            a = np.frombuffer(chunk, np.uint8)
            nl = np.flatnonzero(a == 10)
            if out["long"] is None and nl.size:
                starts = np.concatenate(([line_start - pos], nl[:-1] + 1))
                lengths = nl + 1 - starts
                big = np.flatnonzero(lengths > block_size)
                if big.size:
                    out["long"] = (nlines + int(big[0]) + 1, int(lengths[big[0]]))
            qs = np.flatnonzero(a == 34)
            if qs.size:
                q_off = pos + qs
                q_line = nlines + np.searchsorted(nl, qs) + 1
                k = 0
                if pending is not None:  # the first quote closes the field left open
                    pair(np.array([pending[0]]), np.array([pending[1]]), q_off[:1], q_line[:1])
                    pending, k = None, 1
                o_off, o_line = q_off[k::2], q_line[k::2]
                c_off, c_line = q_off[k + 1 :: 2], q_line[k + 1 :: 2]
                m = c_off.size
                pair(o_off[:m], o_line[:m], c_off, c_line)
                if o_off.size > m:
                    pending = (int(o_off[-1]), int(o_line[-1]))
            if nl.size:
                line_start = pos + int(nl[-1]) + 1
            nlines += nl.size
            pos += len(chunk)
    except OSError:
        pass
    if out["long"] is None and pos - line_start > block_size:
        out["long"] = (nlines + 1, pos - line_start)
    if pending is not None:
        out["unclosed"] = pending[1]
        if out["long_quote"] is None and pos - pending[0] > block_size:
            out["long_quote"] = (pending[1], pos - pending[0])
        if out["spans"] is None and pending[1] <= nlines:
            out["spans"] = pending[1]
    out["size"] = pos
    return out


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


def _unclosed_quote(path: Path, scan: dict[str, Any], found: str) -> DataError:
    line = scan["spans"] or scan["unclosed"]
    return DataError(
        f"{path}: line {line}: a quote opened here is never closed (the file holds an odd "
        f"number of '\"'), so the lines after it were read into one field ({found}) and lost "
        "as rows; close or remove the quote"
    )


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


def _null_tokens(data: Any, null_values: Sequence[str]) -> Any:
    """Replace the missing-value tokens in the string columns of a Parquet table or batch
    by nulls (vectorised; dictionary columns through their dictionaries)."""
    tokens = pa.array(list(dict.fromkeys(("", *null_values))), pa.string())
    cols = list(data.columns)
    schema = data.schema
    changed = False
    for i, col in enumerate(cols):
        new = _null_tokens_column(col, tokens)
        if new is not col:
            cols[i] = new
            schema = schema.set(i, schema.field(i).with_nullable(True))
            changed = True
    if not changed:
        return data
    if isinstance(data, pa.Table):
        return pa.Table.from_arrays(cols, schema=schema)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _null_tokens_column(col: Any, tokens: pa.Array) -> Any:
    t = col.type
    if isinstance(col, pa.ChunkedArray):
        if not (_is_text(t) or (pa.types.is_dictionary(t) and _is_text(t.value_type))):
            return col
        old = col.chunks  # (each access makes new wrappers)
        chunks = [_null_tokens_column(c, tokens) for c in old]
        if all(n is o for n, o in zip(chunks, old, strict=True)):
            return col
        return pa.chunked_array(chunks, type=t)
    if _is_text(t):
        hit = pc.is_in(col, value_set=tokens.cast(t))
        if not pc.any(hit).as_py():
            return col
        return pc.if_else(hit, pa.scalar(None, t), col)
    if pa.types.is_dictionary(t) and _is_text(t.value_type):
        hit = pc.is_in(col.dictionary, value_set=tokens.cast(t.value_type))
        if not pc.any(hit).as_py():
            return col
        rows = pc.fill_null(pc.take(hit, col.indices), False)
        indices = pc.if_else(rows, pa.scalar(None, col.indices.type), col.indices)
        return pa.DictionaryArray.from_arrays(indices, col.dictionary, ordered=t.ordered)
    return col


def _parquet_error(path: Path, exc: Exception) -> DataError:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        magic = b"PAR1"
    hint = ""
    if magic != b"PAR1":
        hint = " (it does not start with 'PAR1': a CSV file needs a .csv name)"
    return DataError(f"{path}: not a readable Parquet file{hint}: {exc}")


# --------------------------------------------------------------------------- reading
def read_table(
    path: str | os.PathLike[str],
    *,
    column_types: dict[str, pa.DataType] | None = None,
    csv: CsvOptions | None = None,
) -> pa.Table:
    """Read a whole CSV or Parquet file.

    ``csv`` says how a CSV file is read (default ``CsvOptions()``); its ``na_values`` also
    apply to the string columns of a Parquet file. Gzip or bzip2 content is recognised by
    its first bytes and decompressed, whatever the file's name.

    Raises
    ------
    DataError
        The file is missing, unreadable, binary, malformed (with the CSV line), not valid
        text in the encoding (with the line and the byte), separated by another character
        than ``csv.sep``, has a row longer than the block size, has duplicated column names,
        or holds no rows.
    """
    path = Path(path)
    fmt = file_format(path)
    opts = _options(csv)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "csv":
        import pyarrow.csv as pacsv

        types = column_types or {}
        block = opts.block_size or _ARROW_BLOCK_SIZE
        _check_head(path, opts)
        try:
            with _open(path) as f:
                table = pacsv.read_csv(
                    f,
                    read_options=_read_options(opts, block),
                    parse_options=_parse_options(opts),
                    convert_options=_convert_options(types, opts.null_values),
                )
        except _CSV_ERRORS as exc:
            raise _explain_csv_error(path, exc, types, opts, block) from exc
        _check_names(path, _names(path, table.schema, opts))
        _check_binary(path, table.schema, types, opts)
        _check_line_breaks(path, table, opts, block)
    else:
        import pyarrow.parquet as pq

        try:
            _check_names(path, pq.read_schema(path).names)
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _parquet_error(path, exc) from exc
        table = _null_tokens(table, opts.null_values)
    if table.num_rows == 0:
        raise DataError(f"{path}: the file holds no data rows")
    return table


def csv_header(path: str | os.PathLike[str], *, csv: CsvOptions | None = None) -> list[str]:
    """The column names of a CSV file (reads only the first block), checked as by
    :func:`read_table`: binary data, another separator, duplicated names."""
    path = Path(path)
    opts = _options(csv)
    _check_head(path, opts)
    names = _header(path, opts, opts.block_size or _ARROW_BLOCK_SIZE, explain=True)
    _check_names(path, names)
    return names


def iter_batches(
    path: str | os.PathLike[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    column_types: dict[str, pa.DataType] | None = None,
    dictionary_columns: Sequence[str] = (),
    csv: CsvOptions | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV or Parquet file as record batches of about ``batch_rows`` rows.

    Memory stays bounded by a few batches whatever the file size. ``column_types`` fixes
    the types of CSV columns (so that a column the model reads as numbers is not inferred
    as integers from the first block and then fails on a later one). ``dictionary_columns``
    are read dictionary-encoded from Parquet (categories repeat: decoding them once per
    row group and writing them back as dictionaries is several times cheaper than strings).
    ``csv`` as in :func:`read_table`.

    Raises
    ------
    DataError
        As :func:`read_table`; a file with no data rows included.
    """
    path = Path(path)
    fmt = file_format(path)
    opts = _options(csv)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    n = 0
    if fmt == "csv":
        import pyarrow.csv as pacsv

        types = column_types or {}
        # ~150 bytes per flow record: blocks of about batch_rows rows
        block = opts.block_size or max(1 << 20, 150 * batch_rows)
        _check_head(path, opts)
        header = _header(path, opts, block, explain=True)
        _check_names(path, header)
        try:
            with _open(path) as f:
                reader = pacsv.open_csv(
                    f,
                    read_options=_read_options(opts, block),
                    parse_options=_parse_options(opts),
                    convert_options=_convert_options(
                        {k: v for k, v in types.items() if k in header}, opts.null_values
                    ),
                )
                _check_binary(path, reader.schema, types, opts)
                _names(path, reader.schema, opts)
                quotes_ok = False
                for batch in reader:
                    if not quotes_ok:
                        quotes_ok = _check_line_breaks(path, batch, opts, block, n)
                    n += batch.num_rows
                    yield batch
        except _CSV_ERRORS as exc:
            raise _explain_csv_error(path, exc, types, opts, block) from exc
    else:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            _check_names(path, pf.schema_arrow.names)
            names = set(pf.schema_arrow.names)
            as_dict = [
                c
                for c in dictionary_columns
                if c in names and pa.types.is_string(pf.schema_arrow.field(c).type)
            ]
            if as_dict:
                pf = pq.ParquetFile(path, read_dictionary=as_dict)
            for batch in pf.iter_batches(batch_size=batch_rows):
                n += batch.num_rows
                yield _null_tokens(batch, opts.null_values)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _parquet_error(path, exc) from exc
    if n == 0:
        raise DataError(f"{path}: the file holds no data rows")


def parquet_schema(path: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise _parquet_error(path, exc) from exc


# --------------------------------------------------------------------------- labels
def parse_labels(
    column: pa.Array | pa.ChunkedArray,
    *,
    anomaly_values: Sequence[str] = (),
    normal_values: Sequence[str] = (),
    name: str = "label",
    source: str = "data",
    fmt: str = "parquet",
) -> np.ndarray:
    """Turn a label column into int64 0 (normal) / 1 (anomaly).

    Without a mapping the accepted values are booleans, the numbers 0 and 1, and the strings
    ``0/1``, ``false/true``, ``normal/anomaly`` (any case, surrounding spaces ignored).

    With ``anomaly_values`` only, rows equal to one of them are anomalies and all others are
    normal; with ``normal_values`` only, the reverse; with both, any value in neither list is
    an error. Values are compared as text, case-insensitively (``--normal-value normal`` maps
    NSL-KDD's attack names to anomalies). How many rows each distinct value gave is logged.

    Raises
    ------
    DataError
        A missing label, or a value outside the accepted set (naming the row and the value).

    Examples
    --------
    >>> import pyarrow as pa
    >>> parse_labels(pa.array(["normal", "Anomaly", "0", "TRUE"])).tolist()
    [0, 1, 0, 1]
    >>> parse_labels(pa.array(["normal", "smurf", "neptune"]), normal_values=["normal"]).tolist()
    [0, 1, 1]
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{source}: label column {name!r} has a missing value at {where(row, fmt)}")
    if pa.types.is_boolean(column.type) and not (anomaly_values or normal_values):
        return column.to_numpy(zero_copy_only=False).astype(np.int64)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    if anomaly_values or normal_values:
        is_a = pc.is_in(
            text, value_set=pa.array([str(v).strip().lower() for v in anomaly_values], pa.string())
        )
        is_n = pc.is_in(
            text, value_set=pa.array([str(v).strip().lower() for v in normal_values], pa.string())
        )
        a = is_a.to_numpy(zero_copy_only=False)
        nrm = is_n.to_numpy(zero_copy_only=False)
        if anomaly_values and normal_values:
            neither = ~(a | nrm)
            if neither.any():
                row = int(np.flatnonzero(neither)[0])
                raise DataError(
                    f"{source}: label column {name!r} has the value {column[row].as_py()!r} at "
                    f"{where(row, fmt)}, which is neither an --anomaly-value "
                    f"{list(anomaly_values)} nor a --normal-value {list(normal_values)}"
                )
            y = a.astype(np.int64)
        elif anomaly_values:
            y = a.astype(np.int64)
        else:
            y = (~nrm).astype(np.int64)
        for v in [*anomaly_values, *normal_values]:
            if not pc.any(pc.equal(text, str(v).strip().lower())).as_py():
                logger.warning("%s: label value %r does not occur in column %r", source, v, name)
        if logger.isEnabledFor(logging.INFO):
            _log_label_mapping(text, y, name, source)
        return y
    is_n = pc.is_in(text, value_set=pa.array(NORMAL_TOKENS)).to_numpy(zero_copy_only=False)
    is_a = pc.is_in(text, value_set=pa.array(ANOMALY_TOKENS)).to_numpy(zero_copy_only=False)
    if not (is_n | is_a).all():
        row = int(np.flatnonzero(~(is_n | is_a))[0])
        raise DataError(
            f"{source}: label column {name!r} has the value {column[row].as_py()!r} at "
            f"{where(row, fmt)}; labels must be 0/1, true/false or normal/anomaly, or be mapped "
            "with --anomaly-value / --normal-value"
        )
    return is_a.astype(np.int64)


def _log_label_mapping(text: pa.Array, y: np.ndarray, name: str, source: str) -> None:
    counts = pc.value_counts(text).to_pylist()
    if len(counts) > 50:
        logger.info("%s: %d distinct labels in %r", source, len(counts), name)
        return
    first = {}
    uniq, idx = np.unique(
        np.asarray(text.to_numpy(zero_copy_only=False), dtype=object), return_index=True
    )
    for u, i in zip(uniq, idx, strict=True):
        first[u] = int(y[i])
    for c in counts:
        logger.info(
            "%s: label %r -> %s (%d rows)",
            source,
            c["values"],
            "anomaly" if first[c["values"]] else "normal",
            c["counts"],
        )


# --------------------------------------------------------------------------- bad rows
def find_bad_rows(
    table: pa.Table | pa.RecordBatch,
    numeric: Sequence[str],
    categories: dict[str, Sequence[str] | None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Rows that cannot be encoded, and for each the first reason, without Python row loops.

    Parameters
    ----------
    table : pyarrow Table or RecordBatch
        Holds every column named in ``numeric`` and ``categories``.
    numeric : sequence of str
        Columns that must hold finite numbers: a missing value, NaN, infinity or a text
        that is not a number makes the row bad.
    categories : dict of column -> known categories, optional
        Categorical columns checked strictly: a missing value or a category not in the list
        makes the row bad. Pass ``{column: None}`` to check only for missing values.

    Returns
    -------
    mask : ndarray of bool, shape (n_rows,)
    reasons : dict of row -> "column 'x': NaN" (the first problem found in that row)
    """
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    per_col: list[tuple[str, np.ndarray, Any]] = []
    for c in numeric:
        col = table.column(c)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        t = col.type
        if pa.types.is_floating(t):
            vals = col.to_numpy(zero_copy_only=False)  # nulls become NaN
            bad = ~np.isfinite(vals)
            if bad.any():
                per_col.append((c, bad, col))
        elif pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
            if col.null_count:
                per_col.append((c, col.is_null().to_numpy(zero_copy_only=False), col))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            ok = pc.match_substring_regex(col, _NUMBER_RE, ignore_case=True)
            ok = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
            # the pattern allows surrounding spaces, which Arrow's cast does not
            text = pc.utf8_trim_whitespace(col)
            vals = pc.cast(pc.if_else(ok, text, pa.scalar("nan")), pa.float64()).to_numpy()
            bad = ~np.isfinite(vals)
            if bad.any():
                per_col.append((c, bad, col))
        else:
            per_col.append((c, np.ones(n, dtype=bool), col))
    for c, known in (categories or {}).items():
        col = table.column(c)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        bad = col.is_null().to_numpy(zero_copy_only=False)
        if known is not None:
            text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
            idx = pc.index_in(text, value_set=pa.array([str(k) for k in known], pa.string()))
            bad = bad | idx.is_null().to_numpy(zero_copy_only=False)
        if bad.any():
            per_col.append((c, bad, col))
    reasons: dict[int, str] = {}
    for c, bad, col in per_col:
        mask |= bad
        for r in np.flatnonzero(bad)[:1000].tolist():  # error path: reasons for the first rows
            if r not in reasons:
                reasons[r] = f"column {c!r}: {_describe(col[r].as_py(), c in (categories or {}))}"
    return mask, reasons


def _describe(value: Any, categorical: bool) -> str:
    if value is None:
        return "missing value"
    if categorical:
        return f"unknown category {value!r}"
    if isinstance(value, float):
        return "NaN" if np.isnan(value) else f"infinite value {value!r}"
    return f"non-numeric value {value!r}"


# --------------------------------------------------------------------------- writing
class AtomicTableWriter:
    """Write record batches to CSV or Parquet through a temporary file, renamed on success.

    Use as a context manager: on an exception the temporary file is removed and the
    destination is left untouched (an existing file there keeps its old content).

    Examples
    --------
    >>> import pyarrow as pa, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with AtomicTableWriter(os.path.join(d, "out.parquet")) as w:
    ...     w.write(pa.record_batch({"a": [1, 2]}))
    >>> sorted(os.listdir(d))
    ['out.parquet']
    """

    def __init__(self, path: str | os.PathLike[str], *, compression: str = "snappy") -> None:
        self.path = Path(path)
        self.format = file_format(self.path)
        self.compression = compression
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._writer: Any = None
        self.rows = 0

    def __enter__(self) -> AtomicTableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._writer is None:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(
                    self.tmp, batch.schema, compression=self.compression
                )
            else:
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(self.tmp, batch.schema)
        if isinstance(batch, pa.Table):
            self._writer.write_table(batch)
        else:
            self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                if self._writer is None:
                    raise DataError(f"{self.path}: nothing to write")
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
