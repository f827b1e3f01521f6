"""Label columns: :func:`parse_labels` turns one into 0 (normal) / 1 (anomaly)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.data.tables.formats import DataError, where

logger = logging.getLogger("anoean")

#: label spellings accepted without a mapping (compared case-insensitively)
NORMAL_TOKENS = ("0", "false", "normal")
ANOMALY_TOKENS = ("1", "true", "anomaly")


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
