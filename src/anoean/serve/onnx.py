"""ONNX export: the encoder and the Mahalanobis distance in one graph.

The graph takes preprocessed feature vectors ``x`` (float32, shape ``[n, p]``, any n) and
returns ``anomaly_score`` (float64, shape ``[n]``), the paper's a(x) = ||(E(x) - mu) W||_2;
the encoder runs in float32 and the distance in float64, so that finite codes always give a
finite score (:mod:`anoean.core.gaussian`).
The model's threshold, feature names and anoean version are stored in the model's
``metadata_props``.

* The MLP encoder is written node by node with ``onnx.helper`` straight from the saved
  weights (no torch exporter involved), as :class:`~anoean.serve.numpy_scorer.NumpyScorer`
  reads them from the architecture the model records: Sub/Div for the input scaling, Gemm
  and LeakyRelu (the recorded slope) for the MLP, then Sub, MatMul, Mul, ReduceSum and Sqrt
  for the distance.
* The conv encoder goes through ``torch.onnx.export`` (the TorchScript-based exporter,
  ``dynamo=False``: the newer exporter needs the extra package ``onnxscript``).

Opset 17 (IR version 8) is used: every operator above is defined there, onnxruntime has
supported it since 1.11, and onnxruntime 1.32 (the version we test with) runs it natively,
so the file also loads on older runtimes found on embedded devices.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from anoean.core.modelfile import ModelFileError, atomic_output, read_model_dir
from anoean.serve.numpy_scorer import (
    TABLE_KINDS,
    NumpyScorer,
    encoder_spec,
    exportable_classes,
    exportable_entry,
)

OPSET = 17
IR_VERSION = 8
INPUT_NAME = "x"
OUTPUT_NAME = "anomaly_score"


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ONNX export needs the 'onnx' package: pip install 'anoean[onnx]'"
        ) from exc
    return onnx


def mlp_graph(scorer: NumpyScorer, *, metadata: dict[str, str] | None = None) -> Any:
    """The ONNX ``ModelProto`` computing ``scorer.score`` (MLP encoder)."""
    _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    nodes = [
        helper.make_node("Sub", [INPUT_NAME, const("shift", scorer.shift)], ["centred"]),
        helper.make_node("Div", ["centred", const("scale", scorer.scale)], ["h0"]),
    ]
    h = "h0"
    last = len(scorer._wt) - 1
    for i, (wt, b) in enumerate(zip(scorer._wt, scorer._b, strict=True)):
        out = f"lin{i}"
        nodes.append(helper.make_node("Gemm", [h, const(f"W{i}", wt), const(f"b{i}", b)], [out]))
        if i < last:
            nodes.append(
                helper.make_node("LeakyRelu", [out], [f"act{i}"], alpha=scorer.negative_slope)
            )
            out = f"act{i}"
        h = out
    # the distance in float64, as in torch and numpy: finite codes give a finite score
    nodes += [
        helper.make_node("Cast", [h], ["code64"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["code64", const("mu", scorer.mu)], ["zc"]),
        helper.make_node("MatMul", ["zc", const("whiten", scorer.whiten)], ["w"]),
        helper.make_node("Mul", ["w", "w"], ["w2"]),
        helper.make_node(
            "ReduceSum", ["w2", const("axes", np.array([1], np.int64))], ["d2"], keepdims=0
        ),
        helper.make_node("Sqrt", ["d2"], [OUTPUT_NAME]),
    ]
    return _model(nodes, "anoean_score", scorer.n_features_in_, inits, metadata)


def _model(
    nodes: list[Any], name: str, n_features: int, inits: list[Any], metadata: dict[str, str] | None
) -> Any:
    """The checked ``ModelProto`` of a table graph: input ``x`` float32 [n, p], output
    ``anomaly_score`` float64 [n], opset :data:`OPSET`, the metadata as properties."""
    onnx = _require_onnx()
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, ["n"])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="anoean",
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model, full_check=True)
    return model


def _mlp_nodes(
    nodes: list[Any],
    const: Any,
    wts: list[np.ndarray],
    biases: list[np.ndarray],
    slope: float,
    inp: str,
    prefix: str,
) -> str:
    """Gemm (and LeakyRelu between layers) nodes of one MLP; returns its output's name."""
    from onnx import helper

    h, last = inp, len(wts) - 1
    for i, (wt, b) in enumerate(zip(wts, biases, strict=True)):
        out = f"{prefix}lin{i}"
        nodes.append(
            helper.make_node(
                "Gemm", [h, const(f"{prefix}W{i}", wt), const(f"{prefix}b{i}", b)], [out]
            )
        )
        if i < last:
            nodes.append(helper.make_node("LeakyRelu", [out], [f"{prefix}act{i}"], alpha=slope))
            out = f"{prefix}act{i}"
        h = out
    return h


def plus_graph(scorer: Any, *, metadata: dict[str, str] | None = None) -> Any:
    """The ONNX ``ModelProto`` computing an AnoEANPlus score
    (:class:`~anoean.serve.numpy_plus.PlusNumpyScorer`): the input scaling, each member's MLP
    and distance (float64), log(1 + distance) normalised, their mean, the head and the
    fusion."""
    _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    f64 = np.float64
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, const("shift", scorer.shift)], ["centred"]),
        helper.make_node("Div", ["centred", const("scale", scorer.scale)], ["xs"]),
    ]
    axes1 = const("axes1", np.array([1], np.int64))
    codes, dists = [], []
    for k, enc in enumerate(scorer.encoders):
        p = f"m{k}_"
        z = _mlp_nodes(nodes, const, enc.wt, enc.b, enc.slope, "xs", p)
        codes.append(z)
        nodes += [
            helper.make_node("Cast", [z], [p + "z64"], to=TensorProto.DOUBLE),
            helper.make_node("Sub", [p + "z64", const(p + "mu", scorer.mu[k])], [p + "zc"]),
            helper.make_node(
                "MatMul", [p + "zc", const(p + "whiten", scorer.whiten[k])], [p + "w"]
            ),
            helper.make_node("Mul", [p + "w", p + "w"], [p + "w2"]),
            helper.make_node("ReduceSum", [p + "w2", axes1], [p + "d2"], keepdims=1),
            helper.make_node("Sqrt", [p + "d2"], [p + "d"]),
            helper.make_node("Add", [p + "d", const(p + "one", np.array([1.0], f64))], [p + "d1"]),
            helper.make_node("Log", [p + "d1"], [p + "ld"]),
            helper.make_node(
                "Sub", [p + "ld", const(p + "uc", np.array([scorer.u_center[k]], f64))], [p + "lc"]
            ),
            helper.make_node(
                "Div", [p + "lc", const(p + "us", np.array([scorer.u_scale[k]], f64))], [p + "u"]
            ),
        ]
        dists.append(p + "u")
    nodes += [
        helper.make_node("Concat", dists, ["u"], axis=1),
        helper.make_node("ReduceMean", ["u"], ["umean"], axes=[1], keepdims=0),
    ]
    out = "umean"
    if scorer.head is not None:
        nodes.append(helper.make_node("Cast", ["u"], ["u32"], to=TensorProto.FLOAT))
        pieces = {"x": ["xs"], "codes": codes, "distances": ["u32"]}
        feats = [t for name in scorer.head_inputs for t in pieces[name]]
        nodes += [
            helper.make_node("Concat", feats, ["f"], axis=1),
            helper.make_node("Sub", ["f", const("f_shift", scorer.f_shift)], ["fc"]),
            helper.make_node("Div", ["fc", const("f_scale", scorer.f_scale)], ["fs"]),
        ]
        hd = scorer.head
        logit = _mlp_nodes(nodes, const, hd.wt, hd.b, hd.slope, "fs", "head_")
        w = scorer.weight
        nodes += [
            helper.make_node("Squeeze", [logit, axes1], ["h"]),
            helper.make_node("Cast", ["h"], ["h64"], to=TensorProto.DOUBLE),
            helper.make_node(
                "Sub", ["h64", const("hc", np.array([scorer.h_center], f64))], ["hcen"]
            ),
            helper.make_node("Div", ["hcen", const("hs", np.array([scorer.h_scale], f64))], ["hd"]),
        ]
        if scorer.max_fusion:
            nodes.append(helper.make_node("Max", ["umean", "hd"], ["fused"]))
        else:
            nodes += [
                helper.make_node(
                    "Max", ["hd", const("hf", np.array([scorer.h_floor], f64))], ["hn"]
                ),
                helper.make_node("Mul", ["umean", const("wu", np.array([w], f64))], ["su"]),
                helper.make_node("Mul", ["hn", const("wh", np.array([1.0 - w], f64))], ["sh"]),
                helper.make_node("Add", ["su", "sh"], ["fused"]),
            ]
        out = "fused"
    nodes.append(helper.make_node("Identity", [out], [OUTPUT_NAME]))
    return _model(nodes, "anoean_plus_score", scorer.n_features_in_, inits, metadata)


def table_graph(scorer: Any, *, metadata: dict[str, str] | None = None) -> Any:
    """The ONNX graph of a table model's numpy scorer: AnoEAN (:func:`mlp_graph`) or
    AnoEANPlus (:func:`plus_graph`)."""
    if isinstance(scorer, NumpyScorer):
        return mlp_graph(scorer, metadata=metadata)
    return plus_graph(scorer, metadata=metadata)


def _conv_graph_bytes(path: str | os.PathLike[str], metadata: dict[str, str]) -> bytes:
    """Export a conv-encoder AnoEAN through torch's exporter; returns the serialised model."""
    import io
    import warnings

    import torch

    from anoean.core.detector import load

    det = load(path, device="cpu")
    onnx = _require_onnx()

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = det.encoder_
            self.register_buffer("mu", det._mu_t.cpu())
            self.register_buffer("whiten", det._whiten_t.cpu())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # float64 distance, as in every engine (anoean.core.gaussian, "Finite scores")
            w = (self.encoder(x).double() - self.mu.double()) @ self.whiten.double()
            return w.pow(2).sum(dim=1).sqrt()

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of one that needs onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Scorer().eval(),
            (torch.zeros(1, *det.input_shape_),),
            buf,  # type: ignore[arg-type]  # a file object works (and is documented)
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "n"}, OUTPUT_NAME: {0: "n"}},
        )
    model = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _feature_names(model_dir: Path, state: dict[str, Any]) -> list[str] | None:
    """Names of the graph's inputs: from the model's preprocessing when it has one."""
    pre = model_dir / "preprocessing.json"
    if pre.is_file():
        try:
            names = json.loads(pre.read_text(encoding="utf-8")).get("feature_names_out")
        except (ValueError, UnicodeDecodeError, AttributeError):
            names = None  # verified when the pipeline is loaded; names are only metadata
        if isinstance(names, list):
            return [str(n) for n in names]
    if "feature_names_in_" in state:
        return [str(n) for n in state["feature_names_in_"]]
    return None


def export_onnx(model_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the ONNX graph of a saved AnoEAN model to ``out`` (atomically).

    Parameters
    ----------
    model_dir : path
        A directory written by ``AnoEAN.save`` or ``anoean fit``.
    out : path
        The ``.onnx`` file to write.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ModelFileError
        The directory is damaged or does not hold an AnoEAN model.
    """
    config, arrays = read_model_dir(model_dir)
    if exportable_entry(config) is None:
        raise ModelFileError(
            f"{model_dir} holds a model of class {config.get('class')}; only "
            f"{exportable_classes()} models export to ONNX"
        )
    state = config["state"]
    metadata = {
        "anoean_version": str(config.get("versions", {}).get("anoean", "")),
        "threshold": repr(float(state["threshold_"])),
        "threshold_rule": str(state.get("threshold_rule_", "")),
        "input": "preprocessed feature vectors, float32 [n, p]",
    }
    names = _feature_names(Path(model_dir), state)
    if names is not None:
        metadata["feature_names"] = json.dumps(names)
    if encoder_spec(config).get("kind") in TABLE_KINDS:
        scorer = NumpyScorer.from_arrays(config, arrays, source=str(model_dir))
        data = table_graph(scorer, metadata=metadata).SerializeToString()
    else:
        data = _conv_graph_bytes(model_dir, metadata)
    out = Path(out)
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    return out


# --------------------------------------------------------------------------- compact input
#: the inputs of a compact scoring graph (:func:`compact_graph`)
NUMERIC_INPUT = "x_numeric"
COMBINATION_INPUT = "x_categories"
#: the most category combinations a compact graph tabulates (its first-layer tables hold
#: one row per combination: 16,384 x 128 float32 = 8 MiB for a 128-wide layer)
MAX_COMBINATIONS = 16_384


def combinations(sizes: list[int]) -> int:
    """The number of rows of a compact graph's tables: every combination of one value (or
    none: an unknown category) per categorical column."""
    n = 1
    for size in sizes:
        n *= int(size) + 1
    return n


def combination_index(positions: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Each row's combination (the input ``x_categories`` of :func:`compact_graph`) from its
    one-hot positions, int64 (n, c), counted from the first one-hot feature with -1 for an
    unknown category (:meth:`~anoean.data.preprocessing.TabularPreprocessor.encode_compact`):
    the mixed-radix number of the per-column codes, 0 standing for an unknown category."""
    offsets = np.cumsum([0, *sizes[:-1]], dtype=np.int64)
    strides = np.ones(len(sizes), dtype=np.int64)
    for j in range(len(sizes) - 2, -1, -1):
        strides[j] = strides[j + 1] * (int(sizes[j + 1]) + 1)
    local = np.where(positions >= 0, positions - offsets + 1, 0)
    return np.asarray(local @ strides, dtype=np.int64)


def compact_graph(model: Any, n_numeric: int, sizes: list[int]) -> Any | None:
    """The scoring graph rewritten for a table whose features are ``n_numeric`` numbers
    followed by one-hot blocks of ``sizes``: inputs ``x_numeric`` (float32 [n, k]) and
    ``x_categories`` (int64 [n], :func:`combination_index`); the same output. None when the
    graph is not of the form rewritten here, or there are more than
    :data:`MAX_COMBINATIONS` combinations of categories.

    Every first layer that reads the input through elementwise Sub/Div by constants,
    Gemm(chain(x) @ W + b), is affine in x: with v0 and v1 the chain applied to 0 and 1,
    chain(x) = (x - A) / D for D = 1 / (v1 - v0), A = -v0 D (float64). It becomes
    Gemm((x_numeric - A) / D, W[:k], C) with C the row of the combination in a table of
    (one-hot(combination) (v1 - v0) + v0) W[k:] + b, one row per combination, computed in
    float64 and stored as float32. So the one-hot features are never written out as floats
    and cost one lookup per row instead of their columns of every first layer's GEMM. The
    scores agree with the dense graph to float32 round-off (the terms are summed in another
    order; the float64 reference is not closer to either).
    """
    _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inp = g.input[0].name
    p = int(g.input[0].type.tensor_type.shape.dim[1].dim_value)
    k = int(n_numeric)
    if len(g.input) != 1 or not 0 <= k < p or k + sum(sizes) != p:
        return None
    if combinations(sizes) > MAX_COMBINATIONS:
        return None
    onehot = _combination_onehots(sizes)
    # tensors that are an elementwise chain of Sub/Div by constant vectors applied to x
    chains: dict[str, list[tuple[str, np.ndarray]]] = {inp: []}
    new_nodes: list[Any] = []
    new_inits: dict[str, np.ndarray] = {}
    for node in g.node:
        if not any(n in chains for n in node.input):
            new_nodes.append(node)
            continue
        op = node.op_type
        if op in ("Sub", "Div") and node.input[0] in chains and node.input[1] in inits:
            c = np.asarray(inits[node.input[1]], dtype=np.float64).reshape(-1)
            if c.shape not in ((p,), (1,)):
                return None
            chains[node.output[0]] = [*chains[node.input[0]], (op, np.broadcast_to(c, (p,)))]
        elif op == "Concat" and len(node.input) == 1:
            chains[node.output[0]] = chains[node.input[0]]
        elif (
            op == "Gemm"
            and node.input[0] in chains
            and len(node.input) == 3
            and all(n in inits for n in node.input[1:])
            and not node.attribute  # alpha = beta = 1, no transposition
        ):
            new_nodes += _compact_linear(
                helper, node, chains[node.input[0]], inits, new_inits, k, onehot
            )
        else:
            return None  # x used otherwise (e.g. concatenated with other features)
    used = {n for node in new_nodes for n in node.input}
    initializers = [numpy_helper.from_array(v, n) for n, v in inits.items() if n in used]
    initializers += [numpy_helper.from_array(v, n) for n, v in new_inits.items()]
    graph = helper.make_graph(
        new_nodes,
        g.name + "_compact",
        [
            helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.FLOAT, ["n", k]),
            helper.make_tensor_value_info(COMBINATION_INPUT, TensorProto.INT64, ["n"]),
        ],
        list(g.output),
        initializer=initializers,
    )
    out = helper.make_model(
        graph,
        opset_imports=list(model.opset_import),
        producer_name="anoean",
        ir_version=model.ir_version,
    )
    _require_onnx().checker.check_model(out, full_check=True)
    return out


def _combination_onehots(sizes: list[int]) -> np.ndarray:
    """The one-hot blocks of every combination, float64 (combinations, sum(sizes)), in the
    order of :func:`combination_index` (code 0 of a column: its block all zero)."""
    codes = np.indices([s + 1 for s in sizes]).reshape(len(sizes), -1).T
    out = np.zeros((codes.shape[0], int(sum(sizes))))
    offset = 0
    for j, size in enumerate(sizes):
        on = np.flatnonzero(codes[:, j] > 0)
        out[on, offset + codes[on, j] - 1] = 1.0
        offset += int(size)
    return out


def _compact_linear(
    helper: Any,
    node: Any,
    chain: list[tuple[str, np.ndarray]],
    inits: dict[str, np.ndarray],
    new_inits: dict[str, np.ndarray],
    k: int,
    onehot: np.ndarray,
) -> list[Any]:
    """The nodes replacing one first layer ``node`` (Gemm of the chain of x) in
    :func:`compact_graph`."""
    w = np.asarray(inits[node.input[1]], dtype=np.float64)  # (p, h)
    b = np.asarray(inits[node.input[2]], dtype=np.float64).reshape(-1)
    p = w.shape[0]
    v0, v1 = np.zeros(p), np.ones(p)
    for op, c in chain:
        v0, v1 = (v0 - c, v1 - c) if op == "Sub" else (v0 / c, v1 / c)
    d = 1.0 / (v1 - v0)
    a = -v0 * d
    table = (onehot * (v1[k:] - v0[k:]) + v0[k:]) @ w[k:] + b
    name = node.output[0]
    pre = f"{name}__compact_"
    new_inits[pre + "shift"] = np.ascontiguousarray(a[:k], dtype=np.float32)
    new_inits[pre + "scale"] = np.ascontiguousarray(d[:k], dtype=np.float32)
    new_inits[pre + "W"] = np.ascontiguousarray(w[:k], dtype=np.float32)
    new_inits[pre + "table"] = np.ascontiguousarray(table, dtype=np.float32)
    return [
        helper.make_node("Sub", [NUMERIC_INPUT, pre + "shift"], [pre + "centred"]),
        helper.make_node("Div", [pre + "centred", pre + "scale"], [pre + "scaled"]),
        helper.make_node("Gather", [pre + "table", COMBINATION_INPUT], [pre + "rows"], axis=0),
        helper.make_node("Gemm", [pre + "scaled", pre + "W", pre + "rows"], [name]),
    ]
