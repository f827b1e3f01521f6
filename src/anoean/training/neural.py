"""What every neural detector shares on top of :class:`~anoean.core.detector.BaseDetector`.

* a stratified hold-out of validation data when none is given;
* the input scaling layer, stored inside the encoder so that every inference path (torch,
  ONNX, numpy) applies it identically;
* batched, on-device inference with bounded memory;
* seeding and device resolution at ``fit`` time (never in ``__init__``).
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from torch import nn

from anoean.core.detector import FLOAT32_MAX, BaseDetector, UnscorableRowsError
from anoean.nn.blocks import Standardize

#: rows per inference batch. Small batches keep each layer's activations in the CPU caches:
#: on 2 cores, scoring 1,000,000 x 122 rows ran at 1.7 M rows/s with 4,096-row batches
#: against 0.93 M rows/s with 32,768 (benchmarks/bench_anoean.py).
INFERENCE_BATCH = 4096


def check_scaling(
    X: np.ndarray, shift: np.ndarray, scale: np.ndarray, index: np.ndarray, name: str
) -> None:
    """Raise :class:`~anoean.core.detector.UnscorableRowsError` where the input scaling
    ``(x - shift) / scale``, in float32 as :class:`Standardize` computes it, overflows on a
    row of X (a column whose values span more than the float32 range). ``index`` maps X's
    rows to the row numbers to report.

    Rounding is monotone, so each column's extremes are its minimum and maximum: the check
    costs one min/max pass unless a column overflows.
    """
    if X.shape[0] == 0:
        return
    flat = X.reshape(X.shape[0], -1)
    s = np.asarray(shift, dtype=np.float32).reshape(-1)
    c = np.asarray(scale, dtype=np.float32).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        ends = (np.stack([flat.min(axis=0), flat.max(axis=0)]) - s) / c
        if np.isfinite(ends).all():
            return
        bad = ~np.isfinite((flat - s) / c)
    i, j = (int(v) for v in np.argwhere(bad)[0])
    rows = np.asarray(index)[np.flatnonzero(bad.any(axis=1))]
    raise UnscorableRowsError(
        f"{name}: row {int(np.asarray(index)[i])}, column {j} holds {float(flat[i, j]):.6g}: "
        f"the input scaling (x - {float(s[j]):.6g}) / {float(c[j]):.6g} overflows the model's "
        f"float32 arithmetic there, as the column's values span more than the float32 range "
        f"(+-{FLOAT32_MAX:.4g}); rescale that column ({rows.size} such row(s) in all)",
        rows,
    )


def finite_weights(module: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``module`` is finite."""
    return all(
        bool(torch.isfinite(t).all())
        for t in (*module.parameters(), *module.buffers())
        if t.is_floating_point()
    )


class NeuralDetector(BaseDetector):
    """Base for torch detectors: architecture check, device, batched inference helpers."""

    __abstract__ = True

    #: parameter constraints every neural detector shares (subclasses add their own)
    _parameter_constraints: ClassVar[dict] = {
        **BaseDetector._parameter_constraints,
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "device": [str],
    }
    #: name of the parameter choosing "mlp" (tables) or "conv" (images)
    _arch_param: ClassVar[str] = "network"

    def _arch(self) -> str:
        return str(getattr(self, self._arch_param))

    def _accepts_images(self) -> bool:
        return self._arch() == "conv"

    def _validate_X(self, X: Any, *, reset: bool, name: str = "X") -> np.ndarray:
        X = super()._validate_X(X, reset=reset, name=name)
        param, kind = self._arch_param, self._arch()
        if kind == "mlp" and X.ndim != 2:
            raise ValueError(f"{param}='mlp' needs 2-D {name} (n, p); got shape {X.shape}")
        if kind == "conv" and X.ndim != 4:
            raise ValueError(
                f"{param}='conv' needs images (n, H, W) or (n, C, H, W) as {name}; got shape "
                f"{X.shape}"
            )
        return X

    def _resolve_scaling(self) -> str:
        scaling = getattr(self, "scaling", "auto")
        if scaling == "auto":
            return "none" if len(self.input_shape_) > 1 else "standard"
        return scaling

    @torch.no_grad()
    def _batched(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        X: np.ndarray,
        out_shape: tuple[int, ...] = (),
        batch: int = INFERENCE_BATCH,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """Apply ``fn`` to X in batches on ``self.device_``; results land in one numpy array
        of ``dtype`` (float64 for scores, so that no finite distance overflows)."""
        out = np.empty((X.shape[0], *out_shape), dtype=dtype)
        dev = self.device_
        with torch.inference_mode():
            for s in range(0, X.shape[0], batch):
                xb = torch.from_numpy(np.ascontiguousarray(X[s : s + batch])).to(dev)
                out[s : s + batch] = fn(xb).cpu().numpy()
        return out

    def _check_rows_finite(
        self, X: np.ndarray, values: np.ndarray, index: np.ndarray, name: str
    ) -> None:
        """Raise :class:`~anoean.core.detector.UnscorableRowsError` naming the first row of X whose
        ``values`` (its scores, or its codes: one row of values per row of X) are not all
        finite; ``index`` maps X's rows to the row numbers to report."""
        ok = np.isfinite(np.asarray(values).reshape(X.shape[0], -1)).all(axis=1)
        self._check_scores(X, np.where(ok, 0.0, np.nan), name, index=index)

    def _input_scaling(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (shift, scale) of the input scaling layer, to explain an unscorable row."""
        for name in ("encoder_", "nets_"):
            module = getattr(self, name, None)
            scaler = getattr(module, "scaler", None)
            if scaler is None and isinstance(module, nn.ModuleDict) and "scaler" in module:
                scaler = module["scaler"]
            if isinstance(scaler, Standardize):
                return scaler.shift.cpu().numpy(), scaler.scale.cpu().numpy()
        return None

    def _module_arrays(self, prefix: str, module: nn.Module) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}

    @staticmethod
    def _load_module(module: nn.Module, prefix: str, arrays: dict[str, Any]) -> None:
        state = {
            k[len(prefix) + 1 :]: torch.from_numpy(np.array(v))
            for k, v in arrays.items()
            if k.startswith(prefix + ".")
        }
        missing = set(module.state_dict()) - set(state)
        unexpected = set(state) - set(module.state_dict())
        if missing or unexpected:
            raise ValueError(
                f"weights for {prefix!r} do not match the architecture: "
                f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        module.load_state_dict(state, strict=True)
