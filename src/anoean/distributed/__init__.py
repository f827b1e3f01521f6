"""Scoring on a Dask cluster (the ``distributed`` extra: ``pip install 'anoean[distributed]'``).

* :func:`score_dask`: a Dask DataFrame in, the same partitions with ``anomaly_score`` and
  ``is_anomaly`` appended out (lazy, through ``map_partitions``);
* :func:`score_files_dask`: many Parquet or CSV files scored one task per file into an
  output folder, each output written atomically (``anoean score ... --engine dask``).

The model is sent to the workers as data, the bytes of its model directory, once per
worker (:mod:`anoean.distributed.payload`). This layer sits above :mod:`anoean.serve`,
which never imports it; dask itself is imported only when a function here is called, and a
missing dask raises an ``ImportError`` that names the extra.
"""

from anoean.distributed.dataframe import score_dask
from anoean.distributed.files import (
    DaskScoreSummary,
    FileResult,
    ScoringJobError,
    dask_client,
    score_files_dask,
)
from anoean.distributed.payload import ModelPayload, model_payload

__all__ = [
    "DaskScoreSummary",
    "FileResult",
    "ModelPayload",
    "ScoringJobError",
    "dask_client",
    "model_payload",
    "score_dask",
    "score_files_dask",
]
