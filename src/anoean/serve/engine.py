"""Choose how a saved model computes a(x) on preprocessed rows: torch, numpy or ONNX Runtime.

All three compute the same function; they agree to float32 round-off (``tests/test_export.py``
checks 1e-5 relative tolerance). What differs is speed and what must be installed:

* ``"torch"``: the detector itself (:func:`anoean.load`); works for every method.
* ``"numpy"``: :class:`~anoean.export.NumpyScorer` (AnoEAN with the MLP encoder) or
  :class:`~anoean.serve.numpy_plus.PlusNumpyScorer` (AnoEANPlus); no torch.
* ``"onnx"``: the graph of :func:`~anoean.export.export_onnx` run by ONNX Runtime, built in
  memory; AnoEAN and AnoEANPlus; needs the ``onnx`` extra. On 2 CPU cores it is the fastest
  of the three for large batches (see ``docs/benchmarks/score.md``).
* ``"auto"``: ``"onnx"`` for such a table model when onnx and onnxruntime are installed,
  else ``"numpy"`` for it, else ``"torch"``.

Neither the numpy nor the ONNX engine imports torch, so a scoring process starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anoean.core.modelfile import ModelFileError, read_model_dir
from anoean.serve.numpy_scorer import (
    TABLE_KINDS,
    NumpyScorer,
    encoder_spec,
    exportable_classes,
    exportable_entry,
)

ENGINES = ("auto", "torch", "numpy", "onnx")


@dataclass
class Scorer:
    """a(x) on preprocessed rows, with the model's threshold.

    ``detector`` is the torch detector when the ``"torch"`` engine loaded it, else None.
    """

    engine: str
    threshold: float
    n_features: int
    fn: Callable[[np.ndarray], np.ndarray]
    detector: Any = None
    #: has ``explain_unscorable(row)``: the detector, or the numpy scorer
    explainer: Any = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Scores of preprocessed rows; non-finite where a row cannot be scored (the caller
        decides: :func:`anoean.serve.scoring.score_batch` stops or flags such rows)."""
        return self.fn(X)

    def explain(self, x: np.ndarray) -> str:
        """Why preprocessed row ``x`` got no finite score."""
        source = self.explainer if self.explainer is not None else self.detector
        if source is None:
            return "its score is not finite"
        return str(source.explain_unscorable(x))


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


#: rows per ONNX Runtime call: a batch is run in slices of this many rows, whose layer
#: outputs (2048 x 128 float32 = 1 MiB) stay in the core's cache; on the benchmark model
#: this halves the time of a 32,768-row batch (docs/benchmarks/score.md). Scores differ
#: from one call on the whole batch by float32 round-off at most (GEMM blocking).
ORT_SLICE_ROWS = 2048


def _ort_fn(model_bytes: bytes, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # no busy-waiting between operators: on shared cores, and beside our reader and writer
    # threads, spinning burns the CPU time the other stages need (measured: +50% CPU)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])

    def run(X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = X.shape[0]
        if n <= ORT_SLICE_ROWS:
            return sess.run(None, {"x": X})[0]
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, ORT_SLICE_ROWS):
            stop = min(n, start + ORT_SLICE_ROWS)
            out[start:stop] = sess.run(None, {"x": X[start:stop]})[0]
        return out

    return run


def load_scorer(
    path: str | os.PathLike[str],
    engine: str = "auto",
    *,
    device: str | None = None,
    threads: int = 1,
) -> Scorer:
    """Load the scoring function of a model directory with the chosen engine.

    ``threads`` is ONNX Runtime's intra-op thread count. One thread per call is the default
    because :func:`anoean.serve.scoring.score_file` runs several batches at once; the session is
    thread-safe.

    Raises
    ------
    ModelFileError
        The model is damaged, or the engine cannot run this kind of model.
    ImportError
        ``engine="onnx"`` without onnx / onnxruntime installed.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
    config, arrays = read_model_dir(path)
    entry = exportable_entry(config)  # a class the numpy and ONNX engines can run
    is_mlp = entry is not None and encoder_spec(config).get("kind") in TABLE_KINDS
    if engine == "auto":
        engine = ("onnx" if _onnx_available() else "numpy") if is_mlp else "torch"
    threshold = float(config["state"]["threshold_"])
    if engine == "torch":
        from anoean.core.detector import BaseDetector

        det = BaseDetector.load(path, device=device)
        # unchecked: score_batch handles rows with a non-finite score itself (fail or flag)
        return Scorer(
            "torch",
            float(det.threshold_),
            int(det.n_features_in_),
            det._unchecked_anomaly_score,
            det,
        )
    if entry is None:
        raise ModelFileError(
            f"{path} holds a model of class {config.get('class')}; the {engine!r} engine runs "
            f"{exportable_classes()} models only (use --engine torch)"
        )
    if not is_mlp:
        raise ModelFileError(
            f"{path} uses {entry.arch_param}={config['params'].get(entry.arch_param)!r}; the "
            f"{engine!r} engine scores table models (MLP encoder) only (use --engine torch)"
        )
    sc = NumpyScorer.from_arrays(config, arrays, source=str(path))
    if engine == "numpy":
        return Scorer("numpy", threshold, sc.n_features_in_, sc._unchecked_score, explainer=sc)
    if not _onnx_available():
        raise ImportError(
            "the 'onnx' engine needs onnx and onnxruntime: pip install 'anoean[onnx]'"
        )
    from anoean.serve.onnx import table_graph

    return Scorer(
        "onnx",
        threshold,
        sc.n_features_in_,
        _ort_fn(table_graph(sc).SerializeToString(), threads),
        explainer=sc,
    )
