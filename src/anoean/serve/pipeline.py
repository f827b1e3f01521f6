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
import importlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anoean.core.datachecks import DataWarning, warn_constant_columns, warn_squashed_columns
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
    DEFAULT_BATCH_ROWS,
    DataError,
    find_bad_rows,
    parse_labels,
    where,
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


@dataclass
class FitReport:
    """What :func:`fit_pipeline` learned and measured."""

    pipeline: Pipeline
    n_rows: int
    n_anomalies: int
    n_train: int
    n_val: int
    val_metrics: dict[str, float | None]


def _looks_numeric(col: pa.ChunkedArray) -> float:
    text = pc.cast(col, pa.string())
    ok = pc.match_substring_regex(text, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
    return float(pc.mean(pc.cast(pc.fill_null(ok, False), pa.int8())).as_py() or 0.0)


def _warn_questionable(pre: Any, X: np.ndarray, max_categories: int, source: str) -> None:
    """The fit-time data warnings, with the table's column names."""
    k = len(pre.numeric_columns_)
    warn_constant_columns(X, pre.feature_names_out_, stacklevel=4)
    raw = X[:, :k].astype(np.float64)
    if pre.scaling == "minmax":  # the values as the user wrote them, for the message
        raw = raw * (pre.data_max_ - pre.data_min_) + pre.data_min_
    warn_squashed_columns(raw, pre.numeric_columns_, kind="min-max", stacklevel=4)
    many = {c: len(v) for c, v in pre.categories_.items() if len(v) > max_categories}
    if many:
        warnings.warn(
            f"{source}: categorical column(s) with more than {max_categories} levels, each "
            f"level one feature: {many}; check that they are categories (an id or a numeric "
            "column read as text?), --exclude them, or raise --max-categories",
            DataWarning,
            stacklevel=4,
        )


def fit_pipeline(
    table: pa.Table,
    *,
    label_column: str,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    method: str = "anoean",
    params: dict[str, Any] | None = None,
    target_false_alarm: float | None = None,
    anomaly_values: Sequence[str] = (),
    normal_values: Sequence[str] = (),
    unknown: str = "ignore",
    validation_fraction: float = 0.2,
    random_state: int = 0,
    verbose: int = 0,
    source: str = "data",
    fmt: str = "parquet",
    max_categories: int = 100,
) -> FitReport:
    """Fit the preprocessing and a detector on a labelled table.

    Fitting works on questionable data but warns (:class:`anoean.core.datachecks.DataWarning`,
    naming the columns): constant columns, an all-constant table, a numeric column squashed
    by min-max scaling because of an extreme value, and a categorical column with more than
    ``max_categories`` levels (each level becomes a feature).

    A stratified ``validation_fraction`` of the rows is held out (both classes): the
    detector uses it for early stopping and for the threshold (``target_false_alarm`` of the
    validation normals), and the returned metrics are measured on it. The preprocessing is
    fitted on all rows: it uses no labels, and fitting it on every row means every category
    present in the file is known.

    Raises
    ------
    DataError
        A missing label column, unusable labels, no normal rows, or a bad value (named by
        column and row).
    """
    from anoean.core.metrics import evaluate
    from anoean.core.splits import holdout_split
    from anoean.data.preprocessing import TabularPreprocessor

    y = labels_of(
        table,
        label_column,
        anomaly_values=anomaly_values,
        normal_values=normal_values,
        source=source,
        fmt=fmt,
    )
    n_anom = int(y.sum())
    if n_anom == y.size:
        raise DataError(
            f"{source}: label column {label_column!r} has no normal rows (all {y.size} rows are "
            "anomalies): the model learns what normal looks like, so it needs normal rows"
        )
    missing = [c for c in [*exclude, *(categorical or ())] if c not in table.column_names]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} not found; columns are {table.column_names}"
        )
    if label_column in (categorical or ()):
        raise DataError(f"{source}: the label column {label_column!r} cannot be categorical")
    if categorical is None:
        # a numeric column with one typo is read as text; refuse rather than one-hot it
        for c in table.column_names:
            if c in exclude or c == label_column or not pa.types.is_string(table.column(c).type):
                continue
            share = _looks_numeric(table.column(c))
            if share >= 0.9:
                mask, reasons = find_bad_rows(table.select([c]), [c])
                if not mask.any():  # every value a number, but read as text
                    raise DataError(
                        f"{source}: column {c!r} holds numbers written as text (e.g. "
                        f"{table.column(c)[0].as_py()!r}, with spaces or quotes around it); "
                        "write them as plain numbers, or list the column in --categorical"
                    )
                row = int(np.flatnonzero(mask)[0])
                raise DataError(
                    f"{source}: column {c!r} holds numbers ({share:.0%} of rows) but also "
                    f"text, first at {where(row, fmt)}: {reasons[row]}; fix the value, or list "
                    "the column in --categorical to treat it as categories"
                )
    pre = TabularPreprocessor(
        categorical=categorical, exclude=[*exclude, label_column], unknown=unknown
    )
    try:
        X = pre.fit_transform(table)
    except ValueError as exc:
        raise DataError(f"{source}: {exc}") from exc
    if X.shape[1] == 0:
        raise DataError(f"{source}: no feature columns left after excluding {list(exclude)}")
    _warn_questionable(pre, X, max_categories, source)

    rng = np.random.default_rng(random_state)
    try:
        tr, va = holdout_split(y, validation_fraction, rng)
    except ValueError as exc:
        raise DataError(f"{source}: {exc}") from exc
    if int((y[tr] == 0).sum()) < 2:
        raise DataError(
            f"{source}: {y.size} rows ({int((y == 0).sum())} normal) are too few: after holding "
            f"out {va.size} row(s) for validation, {int((y[tr] == 0).sum())} normal row(s) are "
            "left to train on, and at least 2 are needed"
        )
    cls = resolve_method(method)
    kwargs = dict(params or {})
    accepted = cls().get_params()
    if "random_state" in accepted:
        kwargs.setdefault("random_state", random_state)
    if "verbose" in accepted:
        kwargs.setdefault("verbose", verbose)
    if target_false_alarm is not None:
        kwargs["target_false_alarm"] = target_false_alarm
        if "contamination" in accepted:
            kwargs["contamination"] = None
    unknown_params = sorted(set(kwargs) - set(accepted))
    if unknown_params:
        raise ValueError(
            f"{cls.__name__} has no parameter(s) {unknown_params}; it takes {sorted(accepted)}"
        )
    det = cls(**kwargs)
    with warnings.catch_warnings():
        # already checked above on the named columns; the detector sees them unnamed
        warnings.simplefilter("ignore", DataWarning)
        det.fit(X[tr], y[tr], X_val=X[va], y_val=y[va])

    s_val = det.anomaly_score(X[va])
    y_val = y[va]
    alarm = s_val > det.threshold_
    metrics: dict[str, float | None] = {
        "false_alarm_at_threshold": float(alarm[y_val == 0].mean()),
        "recall_at_threshold": float(alarm[y_val == 1].mean()) if y_val.any() else None,
        "threshold": float(det.threshold_),
    }
    if y_val.any():
        metrics.update(evaluate(y_val, s_val))
    meta = {
        "format": PIPELINE_FORMAT,
        "format_version": PIPELINE_VERSION,
        "method": method.lower(),
        "detector_class": type(det).__name__,
        "label_column": label_column,
        "anomaly_values": list(anomaly_values),
        "normal_values": list(normal_values),
        "input_types": {c: str(table.schema.field(c).type) for c in pre.input_columns_},
        "n_features": int(X.shape[1]),
        "fit": {
            "rows": int(y.size),
            "anomalies": n_anom,
            "train_rows": int(tr.size),
            "validation_rows": int(va.size),
            "source": str(source),
        },
        "validation": metrics,
    }
    from anoean.serve.engine import Scorer

    scorer = Scorer(
        "torch", float(det.threshold_), int(X.shape[1]), det._unchecked_anomaly_score, det
    )
    return FitReport(
        Pipeline(pre, scorer, meta, None, det),
        int(y.size),
        n_anom,
        int(tr.size),
        int(va.size),
        metrics,
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
    from anoean.serve.engine import load_scorer
    from anoean.data.preprocessing import TabularPreprocessor

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
    scorer = load_scorer(path, engine, device=device)
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


# --------------------------------------------------------------------------- evaluation
def evaluate_table(
    pipe: Pipeline,
    table: pa.Table,
    *,
    label_column: str | None = None,
    anomaly_values: Sequence[str] | None = None,
    normal_values: Sequence[str] | None = None,
    source: str = "data",
    fmt: str = "parquet",
) -> tuple[dict[str, float | None], np.ndarray, np.ndarray]:
    """Metrics of the model on a labelled table: (metrics, labels, scores).

    The paper's metrics (AUC-PR, best F1 with its false-alarm rate and recall, AUROC) plus
    the false-alarm rate and recall at the model's own threshold.
    """
    from anoean.core.metrics import evaluate

    col = label_column or pipe.label_column
    if not col:
        raise DataError(f"{source}: pass --label-column")
    y = labels_of(
        table,
        col,
        anomaly_values=pipe.meta.get("anomaly_values", ())
        if anomaly_values is None
        else anomaly_values,
        normal_values=pipe.meta.get("normal_values", ())
        if normal_values is None
        else normal_values,
        source=source,
        fmt=fmt,
    )
    if y.all():
        raise DataError(f"{source}: label column {col!r} has no normal rows")
    if not y.any():
        raise DataError(
            f"{source}: label column {col!r} has no anomalies: the metrics are undefined"
        )
    missing = [c for c in pipe.preprocessor.input_columns_ if c not in table.column_names]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} were used in fit but are missing here; "
            f"the model needs {pipe.preprocessor.input_columns_}"
        )
    mask, reasons = pipe.unscorable_rows(table)
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        raise DataError(f"{source}: {where(row, fmt)}, {reasons[row]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # unknown categories: as in fit's policy
        X = pipe.features(table)
    try:
        scores = pipe.score(X)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from exc
    alarm = scores > pipe.threshold
    metrics: dict[str, float | None] = dict(evaluate(y, scores))
    metrics["false_alarm_at_threshold"] = float(alarm[y == 0].mean())
    metrics["recall_at_threshold"] = float(alarm[y == 1].mean())
    metrics["threshold"] = pipe.threshold
    metrics["rows"] = float(y.size)
    metrics["anomalies"] = float(y.sum())
    return metrics, y, scores


__all__ = [
    "ALARM_COLUMN",
    "SCORE_COLUMN",
    "DEFAULT_BATCH_ROWS",
    "FitReport",
    "Pipeline",
    "ScoreSummary",
    "available_methods",
    "evaluate_table",
    "fit_pipeline",
    "get_pipeline",
    "load_pipeline",
    "resolve_method",
    "save_pipeline",
    "score_batch",
    "score_file",
]

# re-exported at the end: scoring builds on the definitions above
from anoean.serve.scoring import (  # noqa: E402
    ALARM_COLUMN,
    SCORE_COLUMN,
    ScoreSummary,
    score_batch,
    score_file,
)
