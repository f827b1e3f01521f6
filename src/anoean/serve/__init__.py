"""Using a fitted model: the shippable pipeline, streamed scoring, the scoring engines
(torch, numpy, ONNX Runtime), ONNX export and the HTML report.

:mod:`.numpy_scorer` and :mod:`.engine`'s numpy path import neither torch nor scikit-learn,
so a scoring process stays light (``anoean.export`` is their public face).
"""
