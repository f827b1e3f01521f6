"""Writing tables atomically: :class:`AtomicTableWriter`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from anoean.data.tables.formats import DataError, file_format


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compression: str = "snappy",
        plain_columns: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.format = file_format(self.path)
        self.compression = compression
        #: Parquet columns written without dictionary encoding: columns of mostly distinct
        #: values (scores), for which the writer would build a dictionary only to drop it
        self.plain_columns = list(plain_columns)
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

                plain = set(self.plain_columns)
                dictionary: bool | list[str] = (
                    [n for n in batch.schema.names if n not in plain] if plain else True
                )
                self._writer = pq.ParquetWriter(
                    self.tmp,
                    batch.schema,
                    compression=self.compression,
                    use_dictionary=dictionary,
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
