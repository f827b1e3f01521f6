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

The package's modules, by concern: :mod:`~anoean.data.tables.formats` (:class:`DataError`,
:class:`CsvOptions`, file types, compression), :mod:`~anoean.data.tables.reading`,
:mod:`~anoean.data.tables.labels`, :mod:`~anoean.data.tables.badrows`,
:mod:`~anoean.data.tables.writer`; the error explanations in
:mod:`~anoean.data.tables.csv_errors`, :mod:`~anoean.data.tables.checks` and
:mod:`~anoean.data.tables.scan`. Import the names from :mod:`anoean.data.tables` itself.
"""

from anoean.data.tables.badrows import find_bad_rows
from anoean.data.tables.formats import (
    DEFAULT_NA_VALUES,
    CsvOptions,
    DataError,
    file_format,
    where,
)
from anoean.data.tables.labels import ANOMALY_TOKENS, NORMAL_TOKENS, parse_labels
from anoean.data.tables.reading import (
    DEFAULT_BATCH_ROWS,
    csv_header,
    iter_batches,
    parquet_schema,
    read_table,
)
from anoean.data.tables.writer import AtomicTableWriter

__all__ = [
    "ANOMALY_TOKENS",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_NA_VALUES",
    "NORMAL_TOKENS",
    "AtomicTableWriter",
    "CsvOptions",
    "DataError",
    "csv_header",
    "file_format",
    "find_bad_rows",
    "iter_batches",
    "parquet_schema",
    "parse_labels",
    "read_table",
    "where",
]
