"""Score a saved AnoEAN with numpy alone: no torch, no scikit-learn.

The score is the paper's a(x) = ||(E(x) - mu) W||_2, where E is the encoder (its input
scaling layer ``Standardize``, then the MLP with a LeakyReLU between linear layers) and
``W`` the whitening matrix stored with the model (see :mod:`anoean.core.gaussian`). The weights are
read with ``safetensors.numpy`` after the same checks as :func:`anoean.load` (format,
SHA-256 of the weights, every shape), so a damaged or tampered model is refused with a
:class:`~anoean.core.modelfile.ModelFileError`.

The layers come from the architecture the model file records (``"architecture"`` in the
state of its ``config.json``: layer widths, activation and slope, and the names of each
layer's weight and bias arrays); which classes can be scored so, from the method registry
(:func:`anoean.core.registry.by_class`, ``numpy_exportable``). Files written by anoean 0.1.0
record no architecture: :func:`legacy_v0_1_0_encoder_spec` gives theirs.

The encoder runs in float32, like the torch model, and the distance in float64, also like
it (so that finite codes always give a finite score; see :mod:`anoean.core.gaussian`): the
scores agree with :meth:`anoean.AnoEAN.anomaly_score` to float32 round-off (see
``tests/test_export.py``). A row whose code is not finite (an input so large that the
encoder overflows) is refused with a ``ValueError`` naming the row and the column: a NaN
score would pass as normal.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from anoean.core.modelfile import ModelFileError, read_model_dir
from anoean.core.registry import METHODS, MethodInfo, by_class
from anoean.core.validation import (
    FLOAT32_MAX,
    check_scoring_rows,
    explain_overflow,
    refuse_unscorable,
)

#: the architecture kind of AnoEANPlus's scoring graph (:mod:`anoean.serve.numpy_plus`)
PLUS_KIND = "anoean_plus"
#: the kinds the numpy and ONNX engines run
TABLE_KINDS = ("mlp", PLUS_KIND)


def exportable_entry(config: dict[str, Any]) -> MethodInfo | None:
    """The registry entry of a saved model's class when that class is exported without torch
    (``numpy_exportable``: :class:`NumpyScorer` and the ONNX graph), else None."""
    entry = by_class(str(config.get("class")))
    return entry if entry is not None and entry.numpy_exportable else None


def exportable_classes() -> str:
    """The classes :func:`exportable_entry` accepts, for messages ("AnoEAN")."""
    return ", ".join(m.class_name for m in METHODS.values() if m.numpy_exportable)


def encoder_spec(config: dict[str, Any]) -> dict[str, Any]:
    """The architecture of a saved model's encoder: what its state records, or, for a file
    written by anoean 0.1.0 (which records none), :func:`legacy_v0_1_0_encoder_spec`."""
    arch = config.get("state", {}).get("architecture")
    if arch is None:
        return legacy_v0_1_0_encoder_spec(config)
    if isinstance(arch, dict) and isinstance(arch.get("scorer"), dict):
        return dict(arch["scorer"])  # AnoEANPlus: the whole scoring graph, kind "anoean_plus"
    spec = arch.get("encoder") if isinstance(arch, dict) else None
    if not isinstance(spec, dict):
        raise ModelFileError("the model's recorded architecture has no encoder")
    return spec


#: the hidden widths and the LeakyReLU slope of anoean 0.1.0's MLP encoder (frozen: what the
#: files of that version hold, whatever later versions build)
V0_1_0_ENCODER_HIDDEN = (128, 64, 32)
V0_1_0_NEGATIVE_SLOPE = 0.2


def legacy_v0_1_0_encoder_spec(config: dict[str, Any]) -> dict[str, Any]:
    """The encoder architecture of an AnoEAN model directory written by anoean 0.1.0.

    0.1.0 recorded no architecture; it follows from the parameters and the input shape:
    ``encoder="conv"`` is the conv encoder; ``encoder="mlp"`` was the input scaling
    (``encoder.scaler``) then ``MLP([p, 128, 64, 32, latent_dim])`` with LeakyReLU(0.2)
    between layers, an ``nn.Sequential`` whose linear layers are its children 0, 2, 4, 6
    (``encoder.body.0`` ...: one activation after each hidden layer). This is the one place
    that knows 0.1.0's weight names; :meth:`NumpyScorer.from_arrays` then checks every array
    shape against the layer widths, as for a file that records its architecture.
    """
    params, state = config.get("params", {}), config.get("state", {})
    kind = params.get("encoder", "mlp")
    if kind != "mlp":
        return {"kind": kind}
    try:
        p, d = int(state["input_shape_"][0]), int(params["latent_dim"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelFileError(f"the model's parameters give no encoder architecture: {exc}") from exc
    layers = [p, *V0_1_0_ENCODER_HIDDEN, d]
    names = [f"encoder.body.{2 * i}" for i in range(len(layers) - 1)]
    return {
        "kind": "mlp",
        "layers": layers,
        "activation": "leaky_relu",
        "negative_slope": V0_1_0_NEGATIVE_SLOPE,
        "weights": [f"{n}.weight" for n in names],
        "biases": [f"{n}.bias" for n in names],
        "input_scaling": {
            "kind": "standardize",
            "shape": [p],
            "shift": "encoder.scaler.shift",
            "scale": "encoder.scaler.scale",
        },
    }


class NumpyScorer:
    """The anomaly score of an AnoEAN model with an MLP encoder, in numpy.

    Parameters
    ----------
    shift, scale : ndarray of shape (p,)
        The encoder's input scaling: ``(x - shift) / scale``.
    layers : list of (weight, bias)
        The MLP's linear layers, weight of shape (out, in) as in torch.
    negative_slope : float in [0, 1]
        Slope of the LeakyReLU between the linear layers.
    mu : ndarray of shape (d,)
        Mean of the encoded validation normals.
    whiten : ndarray of shape (d, d)
        Whitening matrix of their covariance.
    threshold : float, optional
        The model's decision threshold on the score.

    Examples
    --------
    >>> import numpy as np
    >>> sc = NumpyScorer(shift=np.zeros(2), scale=np.ones(2), layers=[(np.eye(2), np.zeros(2))],
    ...                  negative_slope=0.2, mu=np.zeros(2), whiten=np.eye(2))
    >>> sc.score(np.array([[3.0, 4.0]]))
    array([5.])
    """

    def __init__(
        self,
        *,
        shift: np.ndarray,
        scale: np.ndarray,
        layers: list[tuple[np.ndarray, np.ndarray]],
        negative_slope: float,
        mu: np.ndarray,
        whiten: np.ndarray,
        threshold: float | None = None,
        feature_names: list[str] | None = None,
    ) -> None:
        f32 = np.float32
        self.shift = np.ascontiguousarray(shift, dtype=f32).reshape(-1)
        self.scale = np.ascontiguousarray(scale, dtype=f32).reshape(-1)
        if not layers:
            raise ValueError("the encoder needs at least one linear layer")
        if not 0.0 <= float(negative_slope) <= 1.0:
            # the activation is computed as max(h, slope * h), which needs a slope in [0, 1]
            raise ValueError(f"negative_slope must be in [0, 1]; got {negative_slope}")
        self.negative_slope = float(negative_slope)
        # stored transposed, (in, out), so a batch is one row-major product per layer
        self._wt = [np.ascontiguousarray(np.asarray(w, dtype=f32).T) for w, _ in layers]
        self._b = [np.ascontiguousarray(b, dtype=f32).reshape(-1) for _, b in layers]
        self.mu = np.ascontiguousarray(mu, dtype=np.float64).reshape(-1)
        self.whiten = np.ascontiguousarray(whiten, dtype=np.float64)
        self.threshold = None if threshold is None else float(threshold)
        self.feature_names = feature_names
        p = self.shift.shape[0]
        if self.scale.shape != (p,):
            raise ValueError(f"shift has {p} entries but scale has {self.scale.shape[0]}")
        width = p
        for i, (wt, b) in enumerate(zip(self._wt, self._b, strict=True)):
            if wt.ndim != 2 or wt.shape[0] != width or b.shape != (wt.shape[1],):
                raise ValueError(
                    f"linear layer {i} has weight {wt.T.shape} and bias {b.shape}, which do not "
                    f"follow a layer of width {width}"
                )
            width = wt.shape[1]
        if self.mu.shape != (width,) or self.whiten.shape != (width, width):
            raise ValueError(
                f"mu {self.mu.shape} and whiten {self.whiten.shape} do not match the "
                f"latent dimension {width}"
            )
        self.n_features_in_ = p
        self.latent_dim = width

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Read a model directory written by ``AnoEAN.save`` (or ``anoean fit``).

        Raises
        ------
        ModelFileError
            The directory is damaged or tampered with, is not an AnoEAN model, or uses the
            conv encoder (export that one to ONNX instead).
        """
        config, arrays = read_model_dir(path)
        return cls.from_arrays(config, arrays, source=str(path))

    @classmethod
    def from_arrays(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray], *, source: str = "model"
    ) -> Any:
        """Build from a verified (config, arrays) pair as returned by ``read_model_dir``,
        reading the layers from the architecture the model records (:func:`encoder_spec`).
        An AnoEANPlus model gives a :class:`~anoean.serve.numpy_plus.PlusNumpyScorer`, with
        the same scoring interface."""
        entry = exportable_entry(config)
        if entry is None:
            raise ModelFileError(
                f"{source} holds a model of class {config.get('class')}; NumpyScorer scores "
                f"{exportable_classes()} models only"
            )
        params, state = config.get("params", {}), config.get("state", {})
        spec = encoder_spec(config)
        if spec.get("kind") == PLUS_KIND:
            from anoean.serve.numpy_plus import PlusNumpyScorer

            return PlusNumpyScorer.from_arrays(config, arrays, source=source)
        if spec.get("kind") != "mlp":
            raise ModelFileError(
                f"{source} uses {entry.arch_param}={params.get(entry.arch_param)!r}; "
                "NumpyScorer supports the MLP encoder only. Export the model to ONNX (anoean "
                "export --onnx) to score it without torch."
            )
        try:
            if spec["activation"] != "leaky_relu":
                raise ValueError(f"activation {spec['activation']!r} is not supported")
            layers = [
                (arrays[w], arrays[b]) for w, b in zip(spec["weights"], spec["biases"], strict=True)
            ]
            widths = [int(layers[0][0].shape[1]), *(int(w.shape[0]) for w, _ in layers)]
            if widths != [int(n) for n in spec["layers"]]:
                raise ValueError(
                    f"the weights have layer widths {widths}, the architecture {spec['layers']}"
                )
            scaling = spec["input_scaling"]
            names = state.get("feature_names_in_")
            return cls(
                shift=arrays[scaling["shift"]],
                scale=arrays[scaling["scale"]],
                layers=layers,
                negative_slope=float(spec["negative_slope"]),
                mu=arrays["gaussian.mu"],
                whiten=arrays["gaussian.whiten"],
                threshold=state.get("threshold_"),
                feature_names=None if names is None else [str(n) for n in names],
            )
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise ModelFileError(f"{source}: model weights are inconsistent: {exc}") from exc

    # ------------------------------------------------------------------ scoring
    def _check(self, X: Any) -> np.ndarray:
        return check_scoring_rows(X, self.n_features_in_, self.feature_names)

    def encode(self, X: Any) -> np.ndarray:
        """The latent codes E(x), shape (n, d), float32 (not finite for a row so large that
        the encoder overflows; :meth:`score` refuses those)."""
        X = self._check(X)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: checked by score
            h = (X - self.shift) / self.scale
            last = len(self._wt) - 1
            for i, (wt, b) in enumerate(zip(self._wt, self._b, strict=True)):
                h = h @ wt
                h += b
                if i < last:
                    # LeakyReLU: max(h, slope h) for a slope in [0, 1]
                    np.maximum(h, self.negative_slope * h, out=h)
        return h

    def _unchecked_score(self, X: Any) -> np.ndarray:
        """:meth:`score` without its finiteness check (non-finite where a code overflowed)."""
        w = self.encode(X).astype(np.float64)
        w -= self.mu
        w = w @ self.whiten
        return np.sqrt(np.einsum("ij,ij->i", w, w))

    def explain_unscorable(self, x: np.ndarray) -> str:
        """Why row ``x`` gets no finite score: its largest input after the input scaling."""
        return explain_overflow(x, self.shift, self.scale, self.feature_names)

    def score(self, X: Any) -> np.ndarray:
        """a(x) for each row of X (n, p), or for one row given as a 1-D array; float64.

        Raises
        ------
        ValueError
            A non-finite input, or a row whose code is not finite (named by row and column).
        """
        s = self._unchecked_score(X)  # checks X
        return refuse_unscorable(s, lambda: self._check(X), self.explain_unscorable)

    __call__ = score

    def score_one(self, x: Any) -> float:
        """a(x) of one row (p,) as a Python float: the low-latency path for single events.

        Same arithmetic as :meth:`score`, with fewer numpy calls (one sum checks that every
        feature is finite).
        """
        x = np.asarray(x)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4 and not (np.abs(x) <= FLOAT32_MAX).all():
            self._check(x)  # raises if a value is beyond float32 (or NaN): names it
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (self.n_features_in_,):
            raise ValueError(f"expected one row of {self.n_features_in_} features; got {x.shape}")
        if not math.isfinite(x.sum()):
            self._check(x)  # raises, naming the bad feature (a mere overflow passes)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: checked below
            h = (x - self.shift) / self.scale
            last = len(self._wt) - 1
            for i, wt in enumerate(self._wt):
                h = h @ wt
                h += self._b[i]
                if i < last:
                    h = np.maximum(h, self.negative_slope * h)
            w = (h.astype(np.float64) - self.mu) @ self.whiten
            s = float(np.sqrt(w @ w))
        if not math.isfinite(s):
            raise ValueError(f"x cannot be scored: {self.explain_unscorable(x)}")
        return s

    def predict(self, X: Any) -> np.ndarray:
        """True where the score exceeds the model's threshold (an alarm)."""
        if self.threshold is None:
            raise ValueError("this scorer has no threshold")
        return self.score(X) > self.threshold

    def __repr__(self) -> str:
        widths = [self.n_features_in_, *(wt.shape[1] for wt in self._wt)]
        return f"NumpyScorer(mlp={'-'.join(map(str, widths))}, threshold={self.threshold})"
