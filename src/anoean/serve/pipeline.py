"""A shippable model: fitted preprocessing + detector, scoring raw table rows.

A *model directory* holds

* ``config.json`` and ``weights.safetensors``: the detector, as written by
  :meth:`anoean.core.detector.BaseDetector.save` (so :func:`anoean.load` reads it too);
* ``preprocessing.json``: the fitted :class:`~anoean.data.preprocessing.TabularPreprocessor`;
* ``pipeline.json``: the label column and its mapping, the method, the column types seen in
  fit, the validation metrics, and the SHA-256 of ``preprocessing.json``.

Scoring needs only raw rows: :func:`score_batch` is a pure function of a model (a directory,
loaded once per process and cached, or a :class:`Pipeline`) and a batch, so a distributed
engine can map it over partitions. :func:`score_file` streams a whole file through it in
bounded memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from anoean.core.modelfile import (
    CONFIG_FILE,
    DIGEST_KEY,
    MAX_JSON_BYTES,
    PIPELINE_FILE,
    PREPROCESSING_FILE,
    WEIGHTS_FILE,
    ModelFileError,
    check_model_destination,
    read_regular,
    read_versioned_json,
    seal,
    write_model_dir,
)
from anoean.data.tables import (
    DataError,
    find_bad_rows,
    parse_labels,
)

logger = logging.getLogger("anoean")

PIPELINE_FORMAT = "anoean-pipeline"
PIPELINE_VERSION = 1


# --------------------------------------------------------------------------- methods
def available_methods() -> dict[str, type]:
    """Method name -> detector class, for every detector of the registry
    (:mod:`anoean.core.registry`), in the registry's order."""
    from anoean.core.registry import METHODS

    return {name: m.load_class() for name, m in METHODS.items()}


def resolve_method(name: str) -> type:
    """The detector class for ``--method name`` (case-insensitive)."""
    from anoean.core.registry import method

    return method(name).load_class()


# --------------------------------------------------------------------------- pipeline
@dataclass
class Pipeline:
    """A fitted preprocessor and a scorer, with the metadata of ``pipeline.json``.

    ``scorer`` computes a(x) on preprocessed rows with one of the engines of
    :mod:`anoean.serve.engine`; ``detector`` is the full detector (torch), loaded on first
    use when the scorer did not need it (the report needs it for latent codes and history).
    """

    preprocessor: Any
    scorer: Any
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _detector: Any = None

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = self.scorer.detector
        if self._detector is None:
            from anoean.core.detector import load

            if self.path is None:
                raise ValueError("this pipeline has no detector and no model directory")
            self._detector = load(self.path)
        return self._detector

    @detector.setter
    def detector(self, value: Any) -> None:
        self._detector = value

    @property
    def label_column(self) -> str | None:
        return self.meta.get("label_column")

    @property
    def threshold(self) -> float:
        return float(self.scorer.threshold)

    @property
    def engine(self) -> str:
        return str(self.scorer.engine)

    def score(self, X: np.ndarray) -> np.ndarray:
        """a(x) of preprocessed rows; always finite.

        Raises
        ------
        DataError
            A row whose score would not be finite (an input too large for the model's
            float32 arithmetic), naming the row and the column.
        """
        s = np.asarray(self.scorer(X), dtype=np.float64)
        bad = ~np.isfinite(s)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"row {r} cannot be scored: {self.scorer.explain(X[r])} "
                f"({int(bad.sum())} such row(s) in all)"
            )
        return s

    def unscorable_rows(
        self, table: pa.Table | pa.RecordBatch, *, strict_categories: bool = False
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Rows the preprocessing cannot encode, with the first reason of each: a missing,
        NaN, infinite or non-numeric number, a number beyond float32 once scaled, a missing
        category, and (when ``strict_categories``) a category not seen in fit."""
        pre = self.preprocessor
        cats = {
            c: (pre.categories_[c] if strict_categories else None) for c in pre.categorical_columns_
        }
        mask, reasons = find_bad_rows(table, pre.numeric_columns_, cats)
        far, far_reasons = pre.out_of_range_rows(table.select(pre.numeric_columns_))
        if far.any():
            mask = mask | far
            for r, why in far_reasons.items():
                reasons.setdefault(r, why)
        return mask, reasons

    def features(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        """Encode a table's rows (the needed columns only; others are ignored)."""
        tab = table if isinstance(table, pa.Table) else pa.Table.from_batches([table])
        return self.preprocessor.transform(tab.select(self.preprocessor.input_columns_))

    def explain(self, table: pa.Table | pa.RecordBatch, **kwargs: Any) -> pa.Table:
        """Why each row scores as it does, per column of the table as it was given: the
        detector's feature attributions (:meth:`anoean.training.neural.NeuralDetector.explain`,
        integrated gradients of a(x); ``kwargs`` go to it), each one-hot block summed back onto
        its categorical column. One float64 column per input column used in fit; a row's
        values add up to its score minus the baseline's.

        Raises
        ------
        TypeError
            The detector cannot explain its scores (only AnoEAN and AnoEANPlus can).
        """
        det = self.detector
        if not callable(getattr(det, "explain", None)):
            raise TypeError(f"{type(det).__name__} cannot explain its scores")
        attr = np.asarray(det.explain(self.features(table), **kwargs))
        return pa.table(fold_attributions(self.preprocessor, attr))

    def labels(self, table: pa.Table, *, source: str = "data", fmt: str = "parquet") -> np.ndarray:
        """The 0/1 labels of ``table`` with the mapping used in fit."""
        col = self.meta.get("label_column")
        if not col:
            raise DataError(f"{source}: the model records no label column; pass one")
        return labels_of(
            table,
            col,
            anomaly_values=self.meta.get("anomaly_values", ()),
            normal_values=self.meta.get("normal_values", ()),
            source=source,
            fmt=fmt,
        )


def fold_attributions(pre: Any, attr: np.ndarray) -> dict[str, np.ndarray]:
    """Per-feature attributions (n, features) -> per input column: a numeric column keeps
    its feature's value, a categorical column gets the sum over its one-hot features."""
    names = list(pre.feature_names_out_)
    if attr.ndim != 2 or attr.shape[1] != len(names):
        raise ValueError(f"attributions of shape {attr.shape}; the features are {len(names)}")
    out: dict[str, np.ndarray] = {}
    k = len(pre.numeric_columns_)
    for j, c in enumerate(pre.numeric_columns_):
        out[c] = attr[:, j].astype(np.float64)
    for c in pre.categorical_columns_:
        width = len(pre.categories_[c])
        out[c] = attr[:, k : k + width].sum(axis=1, dtype=np.float64)
        k += width
    # in the order the columns were given in fit
    return {c: out[c] for c in pre.input_columns_ if c in out}


def labels_of(
    table: pa.Table,
    column: str,
    *,
    anomaly_values: Sequence[str] = (),
    normal_values: Sequence[str] = (),
    source: str = "data",
    fmt: str = "parquet",
) -> np.ndarray:
    """Parse ``table[column]`` as labels, with a clear error when the column is missing."""
    if column not in table.column_names:
        raise DataError(
            f"{source}: label column {column!r} not found; columns are {table.column_names}"
        )
    return parse_labels(
        table.column(column),
        anomaly_values=anomaly_values,
        normal_values=normal_values,
        name=column,
        source=source,
        fmt=fmt,
    )


# --------------------------------------------------------------------------- persistence
def save_pipeline(pipe: Pipeline, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the model directory (atomically: built beside ``path``, then renamed).

    ``path`` must not exist, or be an empty directory, or (with ``overwrite=True``) hold an
    anoean model; anything else raises ``FileExistsError`` and nothing is touched
    (:func:`anoean.core.modelfile.write_model_dir`). Only the model's own files are replaced.
    """
    path = Path(path)
    check_model_destination(path, overwrite=overwrite)
    files = pipe.detector.model_files()
    pre_text = pipe.preprocessor.to_json().encode("utf-8")
    meta = dict(pipe.meta)
    meta.pop(DIGEST_KEY, None)
    meta["preprocessing_sha256"] = hashlib.sha256(pre_text).hexdigest()
    # config.json holds the threshold and the parameters; pin the file itself here too
    meta["config_sha256"] = hashlib.sha256(files[CONFIG_FILE]).hexdigest()
    meta = seal(meta)
    # in MODEL_FILES order: what a JSON file pins is in place before the JSON file
    files = {
        WEIGHTS_FILE: files[WEIGHTS_FILE],
        PREPROCESSING_FILE: pre_text,
        CONFIG_FILE: files[CONFIG_FILE],
        PIPELINE_FILE: json.dumps(meta, indent=2).encode("utf-8"),
    }
    write_model_dir(path, files, overwrite=overwrite)
    pipe.path = path
    pipe.meta = meta
    return path


def load_pipeline(
    path: str | os.PathLike[str], *, engine: str = "auto", device: str | None = None
) -> Pipeline:
    """Read and verify a model directory written by :func:`save_pipeline`.

    Raises
    ------
    ModelFileError
        A file is missing, unparsable, or does not match its recorded SHA-256 (the weights'
        digest is kept in ``config.json``, the preprocessing's in ``pipeline.json``), or the
        parts do not fit together.
    """
    from anoean.data.preprocessing import TabularPreprocessor
    from anoean.serve.engine import load_scorer

    path = Path(path)
    meta_file, pre_file = path / PIPELINE_FILE, path / PREPROCESSING_FILE
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model directory")
    for f in (meta_file, pre_file):
        if not f.is_file():
            raise ModelFileError(f"{path} is not an anoean model directory: {f.name} is missing")
    meta = read_versioned_json(meta_file, PIPELINE_FORMAT, PIPELINE_VERSION, "pipeline file")
    cfg_file = path / CONFIG_FILE
    if cfg_file.is_file() and "config_sha256" in meta:
        if hashlib.sha256(read_regular(cfg_file)).hexdigest() != meta["config_sha256"]:
            raise ModelFileError(
                f"{cfg_file} does not match the SHA-256 recorded in {PIPELINE_FILE}: the "
                "detector's configuration (threshold, parameters) was damaged or modified"
            )
    pre_bytes = read_regular(pre_file, MAX_JSON_BYTES)
    if hashlib.sha256(pre_bytes).hexdigest() != meta.get("preprocessing_sha256"):
        raise ModelFileError(
            f"{pre_file} does not match the SHA-256 recorded in {PIPELINE_FILE}: the "
            "preprocessing was damaged or modified"
        )
    try:
        pre = TabularPreprocessor.from_json(pre_bytes.decode("utf-8"))
    except Exception as exc:  # any malformed content is a damaged file, never a crash
        raise ModelFileError(f"{pre_file}: {exc}") from exc
    # with categorical columns, the ONNX engine also reads them as one-hot positions
    sizes = [len(pre.categories_[c]) for c in pre.categorical_columns_]
    layout = (len(pre.numeric_columns_), sizes) if sizes else None
    scorer = load_scorer(path, engine, device=device, onehot_layout=layout)
    if scorer.n_features != len(pre.feature_names_out_):
        raise ModelFileError(
            f"{path}: the detector takes {scorer.n_features} features but the preprocessing "
            f"produces {len(pre.feature_names_out_)}"
        )
    return Pipeline(pre, scorer, meta, path)


_CACHE: dict[tuple[str, str, float, float], Pipeline] = {}
_CACHE_LOCK = threading.Lock()


def get_pipeline(model: str | os.PathLike[str] | Pipeline, *, engine: str = "auto") -> Pipeline:
    """A :class:`Pipeline` as is, or a model directory loaded once per process (cached).

    The cache key includes the engine and the modification times of ``pipeline.json`` and
    ``config.json``, so a model replaced in place is reloaded.
    """
    if isinstance(model, Pipeline):
        return model
    p = Path(model).resolve()
    try:
        mtimes = ((p / PIPELINE_FILE).stat().st_mtime, (p / CONFIG_FILE).stat().st_mtime)
    except OSError:
        return load_pipeline(p, engine=engine)  # raises the right ModelFileError
    key = (str(p), engine, *mtimes)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_pipeline(p, engine=engine)
        return _CACHE[key]


def warm_graph_cache(path: str | os.PathLike[str]) -> bool:
    """Build and cache the ONNX graphs of a saved pipeline (``anoean fit`` does it after
    saving), so that its first ``anoean score`` on this machine already finds them; True
    when they are cached. Best effort: without onnx, for a model the ONNX engine does not run,
    or with the cache off, nothing is done and False is returned."""
    from anoean.serve.engine import _onnx_available, graph_cache_dir

    if graph_cache_dir() is None or not _onnx_available():
        return False
    try:
        load_pipeline(path, engine="onnx")
    except (ImportError, ModelFileError):
        return False
    return True
