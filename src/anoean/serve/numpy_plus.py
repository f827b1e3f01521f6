"""Score a saved AnoEANPlus with numpy alone: no torch, no scikit-learn.

The same arithmetic as :class:`anoean.models.anoean_plus.nets.PlusScorer`, read from the
architecture the model file records (``"scorer"``: the input scaling, each member's MLP, the
head and the names of every array): the encoders and the head run in float32, the distances,
their log and the fusion in float64, as in torch. The scores agree with
:meth:`anoean.AnoEANPlus.anomaly_score` to float32 round-off (``tests/serve``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anoean.core.modelfile import ModelFileError
from anoean.core.validation import (
    FLOAT32_MAX,
    check_scoring_rows,
    explain_overflow,
    refuse_unscorable,
)


class _Mlp:
    """A float32 MLP with LeakyReLU between its linear layers (weights stored (in, out))."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], slope: float) -> None:
        if not layers:
            raise ValueError("an MLP needs at least one linear layer")
        if not 0.0 <= slope <= 1.0:
            raise ValueError(f"negative_slope must be in [0, 1]; got {slope}")
        f32 = np.float32
        self.wt = [np.ascontiguousarray(np.asarray(w, dtype=f32).T) for w, _ in layers]
        self.b = [np.ascontiguousarray(b, dtype=f32).reshape(-1) for _, b in layers]
        self.slope = float(slope)
        for i, (wt, b) in enumerate(zip(self.wt, self.b, strict=True)):
            if wt.ndim != 2 or b.shape != (wt.shape[1],):
                raise ValueError(f"linear layer {i} has weight {wt.T.shape} and bias {b.shape}")
            if i and wt.shape[0] != self.wt[i - 1].shape[1]:
                raise ValueError(f"linear layer {i} does not follow layer {i - 1}")
        self.in_dim, self.out_dim = self.wt[0].shape[0], self.wt[-1].shape[1]

    @classmethod
    def from_spec(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> _Mlp:
        if spec.get("kind") != "mlp" or spec.get("activation") != "leaky_relu":
            raise ValueError(f"unsupported layer kind {spec.get('kind')}/{spec.get('activation')}")
        layers = [
            (arrays[w], arrays[b]) for w, b in zip(spec["weights"], spec["biases"], strict=True)
        ]
        mlp = cls(layers, float(spec["negative_slope"]))
        widths = [mlp.in_dim, *(wt.shape[1] for wt in mlp.wt)]
        if widths != [int(n) for n in spec["layers"]]:
            raise ValueError(
                f"the weights have layer widths {widths}, the architecture {spec['layers']}"
            )
        return mlp

    def __call__(self, h: np.ndarray) -> np.ndarray:
        last = len(self.wt) - 1
        for i, (wt, b) in enumerate(zip(self.wt, self.b, strict=True)):
            h = h @ wt
            h += b
            if i < last:
                np.maximum(h, self.slope * h, out=h)
        return h


def _scalar(buffers: dict[str, np.ndarray], name: str) -> float:
    value = np.asarray(buffers[name], dtype=np.float64).reshape(-1)
    if value.shape != (1,):
        raise ValueError(f"{name} should hold one number; it has shape {value.shape}")
    return float(value[0])


class PlusNumpyScorer:
    """The anomaly score of an AnoEANPlus model, in numpy (the interface of
    :class:`~anoean.serve.numpy_scorer.NumpyScorer`: :meth:`score`, :meth:`score_one`,
    :meth:`predict`, ``threshold``, ``n_features_in_``)."""

    def __init__(
        self,
        *,
        shift: np.ndarray,
        scale: np.ndarray,
        encoders: list[_Mlp],
        head: _Mlp | None,
        head_inputs: list[str],
        buffers: dict[str, np.ndarray],
        threshold: float | None = None,
        feature_names: list[str] | None = None,
    ) -> None:
        self.shift = np.ascontiguousarray(shift, dtype=np.float32).reshape(-1)
        self.scale = np.ascontiguousarray(scale, dtype=np.float32).reshape(-1)
        p = self.shift.shape[0]
        if self.scale.shape != (p,):
            raise ValueError(f"shift has {p} entries but scale has {self.scale.shape[0]}")
        if not encoders:
            raise ValueError("AnoEANPlus needs at least one encoder")
        self.encoders, self.head, self.head_inputs = encoders, head, list(head_inputs)
        k, d = len(encoders), encoders[0].out_dim
        for i, enc in enumerate(encoders):
            if enc.in_dim != p or enc.out_dim != d:
                raise ValueError(f"encoder {i} maps {enc.in_dim} -> {enc.out_dim}, not {p} -> {d}")
        f64 = np.float64
        self.mu = np.asarray(buffers["mu"], f64)
        self.whiten = np.asarray(buffers["whiten"], f64)
        self.u_center = np.asarray(buffers["u_center"], f64)
        self.u_scale = np.asarray(buffers["u_scale"], f64)
        self.f_shift = np.asarray(buffers["f_shift"], np.float32)
        self.f_scale = np.asarray(buffers["f_scale"], np.float32)
        self.h_center, self.h_scale, self.weight, self.h_floor, self.max_fusion = (
            _scalar(buffers, name)
            for name in ("h_center", "h_scale", "weight", "h_floor", "max_fusion")
        )
        if self.mu.shape != (k, d) or self.whiten.shape != (k, d, d):
            raise ValueError(
                f"mu {self.mu.shape} and whiten {self.whiten.shape} are not ({k}, {d})"
            )
        if self.u_center.shape != (k,) or self.u_scale.shape != (k,):
            raise ValueError("the distance normalisation does not have one entry per member")
        if head is not None:
            widths = {"x": p, "codes": k * d, "distances": k}
            f_in = sum(widths[name] for name in self.head_inputs)
            if head.in_dim != f_in or head.out_dim != 1 or self.f_shift.shape != (f_in,):
                raise ValueError(f"the head does not read {f_in} features into one logit")
        self.threshold = None if threshold is None else float(threshold)
        self.feature_names = feature_names
        self.n_features_in_ = p
        self.latent_dim = d
        # the head's input standardisation folded into its first layer, for scoring:
        # ((f - shift) / scale) @ W + b = f @ (W / scale) + (b - (shift / scale) @ W)
        self._head = None
        if head is not None:
            w0 = np.asarray(head.wt[0] / self.f_scale[:, None])
            b0 = np.asarray(head.b[0] - (self.f_shift / self.f_scale) @ head.wt[0])
            layers: list[tuple[np.ndarray, np.ndarray]] = [(w0.T, b0)]
            layers += [(wt.T, b) for wt, b in zip(head.wt[1:], head.b[1:], strict=True)]
            self._head = _Mlp(layers, head.slope)

    @classmethod
    def from_arrays(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray], *, source: str = "model"
    ) -> PlusNumpyScorer:
        """Build from a verified (config, arrays) pair as ``read_model_dir`` returns it."""
        state = config.get("state", {})
        try:
            spec = state["architecture"]["scorer"]
            scaling = spec["input_scaling"]
            encoders = [_Mlp.from_spec(e, arrays) for e in spec["encoders"]]
            head = None if spec["head"] is None else _Mlp.from_spec(spec["head"], arrays)
            buffers = {name: np.asarray(arrays[key]) for name, key in spec["buffers"].items()}
            names = state.get("feature_names_in_")
            return cls(
                shift=arrays[scaling["shift"]],
                scale=arrays[scaling["scale"]],
                encoders=encoders,
                head=head,
                head_inputs=list(spec.get("head_inputs", ["x"])),
                buffers=buffers,
                threshold=state.get("threshold_"),
                feature_names=None if names is None else [str(n) for n in names],
            )
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise ModelFileError(f"{source}: model weights are inconsistent: {exc}") from exc

    # ------------------------------------------------------------------ scoring
    def _check(self, X: Any) -> np.ndarray:
        return check_scoring_rows(X, self.n_features_in_, self.feature_names)

    def parts(self, X: Any) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The scaled rows, each member's code and the normalised distances (n, K)."""
        X = self._check(X)
        with np.errstate(over="ignore", invalid="ignore"):
            xs = (X - self.shift) / self.scale
            codes = [enc(xs) for enc in self.encoders]
            u = np.empty((X.shape[0], len(codes)))
            for k, z in enumerate(codes):
                w = (z.astype(np.float64) - self.mu[k]) @ self.whiten[k]
                u[:, k] = np.sqrt(np.einsum("ij,ij->i", w, w))
            u = (np.log1p(u) - self.u_center) / self.u_scale
        return xs, codes, u

    def _unchecked_score(self, X: Any) -> np.ndarray:
        """:meth:`score` without its finiteness check."""
        xs, codes, u = self.parts(X)
        score = u.mean(axis=1)
        if self.head is None:
            return score
        assert self._head is not None
        pieces = {"x": [xs], "codes": codes, "distances": [u.astype(np.float32)]}
        parts = [t for name in self.head_inputs for t in pieces[name]]
        f = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            h = self._head(f)[:, 0].astype(np.float64)
            h = (h - self.h_center) / self.h_scale
            if self.max_fusion:
                return np.maximum(score, h)
            h = np.maximum(h, self.h_floor)
            return self.weight * score + (1.0 - self.weight) * h

    def explain_unscorable(self, x: np.ndarray) -> str:
        """Why row ``x`` gets no finite score: its largest input after the input scaling."""
        return explain_overflow(x, self.shift, self.scale, self.feature_names)

    def score(self, X: Any) -> np.ndarray:
        """The anomaly score of each row of X (n, p), or of one row given as a 1-D array.

        Raises
        ------
        ValueError
            A non-finite input, or a row whose score is not finite (named by row and column).
        """
        s = self._unchecked_score(X)  # checks X
        return refuse_unscorable(s, lambda: self._check(X), self.explain_unscorable)

    __call__ = score

    def score_one(self, x: Any) -> float:
        """The score of one row (p,) as a Python float."""
        x = np.asarray(x)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4 and not (np.abs(x) <= FLOAT32_MAX).all():
            self._check(x)
        if x.shape != (self.n_features_in_,):
            raise ValueError(f"expected one row of {self.n_features_in_} features; got {x.shape}")
        s = float(self.score(x[None, :])[0])
        if not math.isfinite(s):  # pragma: no cover - score raises first
            raise ValueError(f"x cannot be scored: {self.explain_unscorable(x)}")
        return s

    def predict(self, X: Any) -> np.ndarray:
        """True where the score exceeds the model's threshold (an alarm)."""
        if self.threshold is None:
            raise ValueError("this scorer has no threshold")
        return self.score(X) > self.threshold

    def __repr__(self) -> str:
        return (
            f"PlusNumpyScorer(members={len(self.encoders)}, head={self.head is not None}, "
            f"threshold={self.threshold})"
        )
