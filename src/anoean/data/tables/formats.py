"""The file formats and CSV options shared by every reader and writer of :mod:`anoean.data.tables`:
:class:`DataError`, :class:`CsvOptions` (and :data:`DEFAULT_NA_VALUES`), the file type from
the name (:func:`file_format`), compression from the first bytes, the pyarrow CSV options,
and the check for duplicated column names."""

from __future__ import annotations

import codecs
import dataclasses
import io
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

#: tokens read as a missing value (null) in every column of a CSV file and in the string
#: columns of a Parquet file; see :mod:`anoean.data.tables` for why "NA" is one of them. "nan"
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


def _open(path: Path, bar: Any = None) -> Any:
    """The file's text as a pyarrow input stream, decompressed if its bytes say so; with a
    tqdm ``bar``, the bytes read from the file (compressed, for a compressed file) move it."""
    if bar is None:
        return pa.input_stream(str(path), compression=_compression(path))
    return pa.input_stream(_CountedFile(path, bar), compression=_compression(path))


class _CountedFile(io.RawIOBase):
    """A binary file whose reads move a progress bar by the bytes read."""

    def __init__(self, path: Path, bar: Any) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 (closed with this object)
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self._bar.update(n or 0)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._bar.update(len(data))
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks; error paths only."""
    with _open(path) as f:
        while chunk := f.read(size):
            yield chunk


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


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)
