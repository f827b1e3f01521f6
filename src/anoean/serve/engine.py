"""Choose how a saved model computes a(x) on preprocessed rows: torch, numpy or ONNX Runtime.

All three compute the same function; they agree to float32 round-off (``tests/test_export.py``
checks 1e-5 relative tolerance). What differs is speed and what must be installed:

* ``"torch"``: the detector itself (:func:`anoean.load`); works for every method.
* ``"numpy"``: :class:`~anoean.export.NumpyScorer` (AnoEAN with the MLP encoder) or
  :class:`~anoean.serve.numpy_plus.PlusNumpyScorer` (AnoEANPlus); no torch.
* ``"onnx"``: the graph of :func:`~anoean.export.export_onnx` run by ONNX Runtime, built in
  memory; AnoEAN and AnoEANPlus; needs the ``onnx`` extra. On 2 CPU cores it is the fastest
  of the three for large batches (see ``docs/benchmarks/score.md``). The built graph is kept
  in a per-user cache (:func:`graph_cache_dir`, keyed by a digest of the model's weights and
  configuration), so that a later load runs it without importing onnx, which takes about
  half a second; ``ANOEAN_GRAPH_CACHE=off`` turns the cache off.
* ``"auto"``: ``"onnx"`` for such a table model when onnx and onnxruntime are installed,
  else ``"numpy"`` for it, else ``"torch"``.

Neither the numpy nor the ONNX engine imports torch, so a scoring process starts fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anoean.core.modelfile import ModelFileError, read_model_dir
from anoean.core.runtime import user_cache_dir
from anoean.serve.numpy_scorer import (
    TABLE_KINDS,
    NumpyScorer,
    encoder_spec,
    exportable_classes,
    exportable_entry,
)

ENGINES = ("auto", "torch", "numpy", "onnx")

logger = logging.getLogger("anoean")


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
    #: a(x) from (numeric features, one-hot positions) as
    #: :meth:`~anoean.data.preprocessing.TabularPreprocessor.encode_compact` gives them,
    #: without the one-hot features written out (the ONNX engine, given the layout); None
    #: where the engine has no such path
    compact: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

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
    """Whether onnx and onnxruntime are installed, found without importing them (importing
    onnx costs about half a second; a cached graph needs onnxruntime alone)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("onnx", "onnxruntime"))


#: environment variable naming the folder of built ONNX graphs (``off`` disables the cache)
GRAPH_CACHE_ENV = "ANOEAN_GRAPH_CACHE"


def graph_cache_dir() -> Path | None:
    """The folder where the ``"onnx"`` engine keeps the graphs it builds, or None when the
    cache is off: ``$ANOEAN_GRAPH_CACHE`` (``off`` or empty: no cache), else
    ``$XDG_CACHE_HOME/anoean/onnx-graphs`` or ``~/.cache/anoean/onnx-graphs``
    (``%LOCALAPPDATA%\\anoean\\onnx-graphs`` on Windows)."""
    env = os.environ.get(GRAPH_CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env).expanduser()
    return user_cache_dir() / "onnx-graphs"


def _graph_key(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """A digest of everything the scoring graph is built from: the model's configuration,
    every array's name, dtype, shape and bytes, the graph builder's opset and anoean's
    version. Equal keys mean the same graph, bit for bit."""
    from anoean import __version__
    from anoean.serve.onnx import OPSET

    h = hashlib.sha256()
    h.update(f"anoean {__version__} opset {OPSET}\n".encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\n{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _graph_path(folder: Path | None, key: str, variant: str = "") -> Path | None:
    """Where the graph cache ``folder`` keeps the graph of the model of digest ``key``
    (``variant``: ``""`` for the graph of preprocessed rows, ``"compact-K-..."`` for
    :func:`~anoean.serve.onnx.compact_graph`); None when the cache is off."""
    if folder is None:
        return None
    suffix = f".{variant}" if variant else ""
    return folder / f"{key}{suffix}.onnx"


def _cached_session(
    path: Path | None, build: Callable[[], bytes | None], threads: int
) -> Any | None:
    """An onnxruntime session of the graph cached at ``path``, else of ``build()`` (which
    imports onnx; its bytes are stored at ``path``). A cached graph that fails its checksum
    or that onnxruntime refuses is rebuilt and replaced. None when ``build`` gives None."""
    cached = None if path is None else _read_graph(path)
    if cached is not None:
        try:
            return _session(cached, threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            logger.debug("cached ONNX graph %s unusable (%s); rebuilding it", path, exc)
    data = build()
    if data is None:
        return None
    if path is not None:
        _store_graph(path, data)
    return _session(data, threads)


def _graph_bytes(sc: Any) -> bytes:
    """The serialised scoring graph of a numpy scorer (imports onnx)."""
    from anoean.serve.onnx import table_graph

    data: bytes = table_graph(sc).SerializeToString()
    return data


def _compact_bytes(sc: Any, n_numeric: int, sizes: list[int]) -> bytes | None:
    """The serialised compact graph (:func:`~anoean.serve.onnx.compact_graph`), or None
    when the graph cannot be rewritten."""
    from anoean.serve.onnx import compact_graph, table_graph

    model = compact_graph(table_graph(sc), n_numeric, sizes)
    return None if model is None else bytes(model.SerializeToString())


def _read_graph(path: Path) -> bytes | None:
    """A cached graph's bytes, or None when it is missing, unreadable or fails its SHA-256
    (the first line of the file)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    digest, _, data = raw.partition(b"\n")
    if hashlib.sha256(data).hexdigest().encode() != digest:
        logger.debug("cached ONNX graph %s fails its checksum; rebuilding it", path)
        return None
    return data


def _store_graph(path: Path, data: bytes) -> None:
    """Write a graph into the cache atomically (a reader never sees half a file), after
    the SHA-256 of its bytes; any failure leaves the cache as it was and scoring goes on."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("ONNX graph cache not written (%s): %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


#: rows per ONNX Runtime call: a batch is run in slices of this many rows, whose layer
#: outputs (2048 x 128 float32 = 1 MiB) stay in the core's cache; on the benchmark model
#: this halves the time of a 32,768-row batch (docs/benchmarks/score.md). Scores differ
#: from one call on the whole batch by float32 round-off at most (GEMM blocking).
ORT_SLICE_ROWS = 2048


def _session(model_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # no busy-waiting between operators: on shared cores, and beside our reader and writer
    # threads, spinning burns the CPU time the other stages need (measured: +50% CPU)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _run_sliced(sess: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The session's output on ``feeds``, run :data:`ORT_SLICE_ROWS` rows at a time (every
    input sliced along its first axis)."""
    n = next(iter(feeds.values())).shape[0]
    if n <= ORT_SLICE_ROWS:
        return np.asarray(sess.run(None, feeds)[0])
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, ORT_SLICE_ROWS):
        stop = min(n, start + ORT_SLICE_ROWS)
        out[start:stop] = sess.run(None, {k: v[start:stop] for k, v in feeds.items()})[0]
    return out


def _ort_fn(sess: Any) -> Callable[[np.ndarray], np.ndarray]:
    def run(X: np.ndarray) -> np.ndarray:
        return _run_sliced(sess, {"x": np.ascontiguousarray(X, dtype=np.float32)})

    return run


def _compact_fits(layout: tuple[int, Sequence[int]], n_features: int) -> bool:
    """Whether a compact graph can serve this feature layout (some categories, the blocks
    adding up, not too many combinations)."""
    from anoean.serve.onnx import MAX_COMBINATIONS, combinations

    k, sizes = int(layout[0]), [int(v) for v in layout[1]]
    return bool(sizes) and k + sum(sizes) == n_features and combinations(sizes) <= MAX_COMBINATIONS


def _ort_compact_fn(sess: Any, sizes: list[int]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    from anoean.serve.onnx import COMBINATION_INPUT, NUMERIC_INPUT, combination_index

    def run(xnum: np.ndarray, positions: np.ndarray) -> np.ndarray:
        combo = combination_index(positions, sizes)
        return _run_sliced(sess, {NUMERIC_INPUT: xnum, COMBINATION_INPUT: combo})

    return run


def load_scorer(
    path: str | os.PathLike[str],
    engine: str = "auto",
    *,
    device: str | None = None,
    threads: int = 1,
    onehot_layout: tuple[int, Sequence[int]] | None = None,
) -> Scorer:
    """Load the scoring function of a model directory with the chosen engine.

    ``threads`` is ONNX Runtime's intra-op thread count. One thread per call is the default
    because :func:`anoean.serve.scoring.score_file` runs several batches at once; the session is
    thread-safe.

    ``onehot_layout``: (k, sizes): the model's features are k numbers followed by one-hot
    blocks of these sizes (a pipeline's preprocessing); the ONNX engine then also gets
    :attr:`Scorer.compact`, which reads the categories as one lookup per row instead of
    one-hot features (:func:`anoean.serve.onnx.compact_graph`), where they have at most
    :data:`~anoean.serve.onnx.MAX_COMBINATIONS` combinations.

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
    auto = engine == "auto"
    if auto:
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
    # the graph cache: a model scored before runs without importing onnx
    folder = graph_cache_dir()
    key = "" if folder is None else _graph_key(config, arrays)
    try:
        sess = _cached_session(_graph_path(folder, key), lambda: _graph_bytes(sc), threads)
        compact = None
        if onehot_layout is not None and _compact_fits(onehot_layout, sc.n_features_in_):
            k, sizes = int(onehot_layout[0]), [int(v) for v in onehot_layout[1]]
            csess = _cached_session(
                _graph_path(folder, key, "compact-" + "-".join(map(str, [k, *sizes]))),
                lambda: _compact_bytes(sc, k, sizes),
                threads,
            )
            compact = None if csess is None else _ort_compact_fn(csess, sizes)
    except ImportError:
        if not auto:
            raise
        # found but not importable (a broken install): "auto" falls back to numpy
        return Scorer("numpy", threshold, sc.n_features_in_, sc._unchecked_score, explainer=sc)
    return Scorer(
        "onnx", threshold, sc.n_features_in_, _ort_fn(sess), explainer=sc, compact=compact
    )
