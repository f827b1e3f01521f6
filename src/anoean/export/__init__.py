"""Running a fitted model without the training stack.

* :class:`NumpyScorer`: a(x) with numpy only (no torch, no scikit-learn), for embedded use.
* :func:`export_onnx`: one ONNX graph, encoder plus Mahalanobis distance (needs ``onnx``).

Both take *preprocessed* feature vectors; :mod:`anoean.serve.pipeline` applies the saved
preprocessing to raw table rows first.
"""

from __future__ import annotations

from typing import Any

from anoean.serve.numpy_scorer import NumpyScorer

__all__ = ["NumpyScorer", "export_onnx"]


def __getattr__(name: str) -> Any:
    if name == "export_onnx":  # lazily: it imports onnx
        from anoean.serve.onnx import export_onnx

        return export_onnx
    raise AttributeError(f"module 'anoean.export' has no attribute {name!r}")
