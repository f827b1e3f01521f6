"""Building blocks shared by every neural model: the MLP, the conv encoder, input scaling,
seeded construction, and :func:`describe`, the JSON architecture of any of them.

These are plain ``nn.Module``s: they know no optimiser, file or numpy array. Weight
initialisation takes an explicit :class:`torch.Generator` so that building a model never
reads or advances torch's global RNG (the layers are created on the ``meta`` device first,
then materialised and initialised from the generator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrize import ParametrizationList

#: slope of the LeakyReLU between the layers of :class:`MLP` and :class:`ConvEncoder`
NEGATIVE_SLOPE = 0.2
#: filters of :class:`ConvEncoder`'s convolutions
CONV_CHANNELS = (32, 64, 128)


class MLP(nn.Sequential):
    """Linear layers of widths ``dims`` with LeakyReLU(0.2) between them (none after the last)."""

    def __init__(self, dims: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
        super().__init__(*layers)
        self.negative_slope = NEGATIVE_SLOPE

    def spec(self, prefix: str | None = None) -> dict[str, Any]:
        """The architecture: layer widths, activation and slope; with ``prefix`` (this
        module's name in the saved weights) also the array names of each layer's weight and
        bias, which is what :class:`anoean.serve.numpy_scorer.NumpyScorer` reads."""
        linears = [(name, m) for name, m in self.named_children() if isinstance(m, nn.Linear)]
        out: dict[str, Any] = {
            "kind": "mlp",
            "layers": [linears[0][1].in_features, *(m.out_features for _, m in linears)],
            "activation": "leaky_relu",
            "negative_slope": self.negative_slope,
        }
        if prefix is not None:
            out["weights"] = [f"{prefix}.{name}.weight" for name, _ in linears]
            out["biases"] = [f"{prefix}.{name}.bias" for name, _ in linears]
        return out


def conv_out_size(size: int, n_layers: int, kernel: int = 4, stride: int = 2, pad: int = 1) -> int:
    for _ in range(n_layers):
        size = (size + 2 * pad - kernel) // stride + 1
    return size


class ConvEncoder(nn.Module):
    """The paper's image encoder: 4x4 convolutions with stride 2 and 32, 64, 128 filters,
    LeakyReLU(0.2) after each, then a linear map of the flattened features to ``out_dim``.
    ``batch_norm=True`` adds batch normalisation after every convolution but the first.

    For 28x28 inputs the feature maps are 14x14, 7x7 and 3x3.
    """

    def __init__(self, in_shape: Sequence[int], out_dim: int, *, batch_norm: bool = False) -> None:
        super().__init__()
        c_in, h, w = (int(s) for s in in_shape)
        self.in_shape, self.out_dim = (c_in, h, w), int(out_dim)
        layers: list[nn.Module] = []
        self.batch_norms: list[bool] = []
        for c in CONV_CHANNELS:
            layers.append(nn.Conv2d(c_in, c, kernel_size=4, stride=2, padding=1))
            norm = batch_norm and c_in != in_shape[0]
            if norm:
                layers.append(nn.BatchNorm2d(c))
            self.batch_norms.append(norm)
            layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
            c_in = c
        self.features = nn.Sequential(*layers)
        oh, ow = conv_out_size(h, len(CONV_CHANNELS)), conv_out_size(w, len(CONV_CHANNELS))
        if oh < 1 or ow < 1:
            raise ValueError(
                f"images of shape {tuple(in_shape)} are too small for the conv encoder"
            )
        self.flat_dim = c_in * oh * ow
        self.head = nn.Linear(self.flat_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))

    def spec(self, prefix: str | None = None) -> dict[str, Any]:
        """The architecture: input shape, filters, kernel, stride, padding, batch norm after
        each convolution, activation and slope, output size."""
        return {
            "kind": "conv",
            "in_shape": list(self.in_shape),
            "channels": list(CONV_CHANNELS),
            "kernel": 4,
            "stride": 2,
            "padding": 1,
            "batch_norm": list(self.batch_norms),
            "activation": "leaky_relu",
            "negative_slope": NEGATIVE_SLOPE,
            "out_dim": self.out_dim,
        }


def raw_weight(m: nn.Module) -> torch.Tensor:
    """The trainable weight tensor of a layer (under spectral normalisation, the un-normalised
    original). The casts only name what torch's ``nn.Module.__getattr__`` types as
    ``Tensor | Module``."""
    if hasattr(m, "parametrizations"):
        parametrizations = cast(nn.ModuleDict, m.parametrizations)
        return cast(ParametrizationList, parametrizations["weight"]).original
    return cast(torch.Tensor, m.weight)


@torch.no_grad()
def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Linear/Conv layer of ``module`` from ``generator``.

    Same distributions as PyTorch's defaults (Kaiming-uniform weights with a=sqrt(5), uniform
    biases in +-1/sqrt(fan_in)), but drawn from the given generator instead of the global one.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = raw_weight(m)
            fan_in = nn.init._calculate_fan_in_and_fan_out(w)[0]
            bound_w = math.sqrt(6.0 / ((1 + 5.0) * max(fan_in, 1)))  # kaiming_uniform_, a=sqrt(5)
            w.uniform_(-bound_w, bound_w, generator=generator)
            if m.bias is not None:
                bound_b = 1.0 / math.sqrt(max(fan_in, 1))
                m.bias.uniform_(-bound_b, bound_b, generator=generator)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()  # deterministic: ones and zeros
    # spectral-norm power-iteration vectors start random too: draw them from the generator
    for m in module.modules():
        for p in (
            getattr(m, "parametrizations", {}).values() if hasattr(m, "parametrizations") else []
        ):
            for sub in p:
                for name in ("_u", "_v"):
                    vec = getattr(sub, name, None)
                    if isinstance(vec, torch.Tensor):
                        vec.normal_(generator=generator)
                        vec.div_(vec.norm().clamp_min(1e-12))
    return module


def build(module_fn, generator: torch.Generator, device: torch.device) -> nn.Module:  # type: ignore[no-untyped-def]
    """Construct ``module_fn()`` without touching the global RNG, then seed-initialise it."""
    with torch.device("meta"):
        module = module_fn()
    # initialise on the CPU, where the generator lives, then move
    module = module.to_empty(device="cpu")
    # buffers such as BatchNorm running stats are left empty by to_empty: reset them
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_running_stats()
    return init_parameters(module, generator).to(device)


class Standardize(nn.Module):
    """``(x - shift) / scale`` with fitted buffers: part of the encoder, so it is exported."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    def set(self, shift: np.ndarray, scale: np.ndarray) -> None:
        self.shift.copy_(torch.as_tensor(shift, dtype=self.shift.dtype))
        self.scale.copy_(torch.as_tensor(scale, dtype=self.scale.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def spec(self, prefix: str | None = None) -> dict[str, Any]:
        """``{"kind": "standardize", "shape": ...}``; with ``prefix`` (this module's name in
        the saved weights) also the array names of ``shift`` and ``scale``."""
        out: dict[str, Any] = {"kind": "standardize", "shape": list(self.shift.shape)}
        if prefix is not None:
            out["shift"], out["scale"] = f"{prefix}.shift", f"{prefix}.scale"
        return out


def describe(module: nn.Module) -> Any:
    """The architecture of ``module`` as JSON: what a model file records (``"architecture"``
    in its ``config.json``) so that a reader knows the layers without parsing weight names.

    A module with a ``spec()`` method describes itself (:class:`MLP`, :class:`ConvEncoder`,
    :class:`Standardize`, the GAN nets' dropout); a layer is one small object (``{"linear":
    [in, out]}``, ``{"conv": [in, out], "kernel": k, "stride": s, "padding": p}``,
    ``{"leaky_relu": slope}``, ``"relu"``, ``{"batch_norm": n}``, ``{"dropout": p}``, with
    ``"spectral_norm": true`` where it applies); a ``Sequential`` is the list of its
    layers; any other module is ``{"module": class name, child name: description, ...}``.
    """
    spec = getattr(module, "spec", None)
    if callable(spec):
        return spec()
    layer = _layer_spec(module)
    if layer is not None:
        return layer
    if isinstance(module, nn.Sequential):
        return [describe(m) for m in module]
    return {
        "module": type(module).__name__.lstrip("_"),
        **{name: describe(child) for name, child in module.named_children()},
    }


def _square(value: tuple[int, ...]) -> int | list[int]:
    return int(value[0]) if len(set(value)) == 1 else [int(v) for v in value]


def _layer_spec(m: nn.Module) -> Any:
    sn = {"spectral_norm": True} if nn.utils.parametrize.is_parametrized(m) else {}
    if isinstance(m, nn.Linear):
        return {"linear": [m.in_features, m.out_features], **sn}
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        kind = "conv" if isinstance(m, nn.Conv2d) else "conv_transpose"
        return {
            kind: [m.in_channels, m.out_channels],
            "kernel": _square(m.kernel_size),
            "stride": _square(m.stride),
            "padding": _square(m.padding),  # type: ignore[arg-type]
            **sn,
        }
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {"batch_norm": m.num_features}
    if isinstance(m, nn.LeakyReLU):
        return {"leaky_relu": m.negative_slope}
    if isinstance(m, nn.Dropout):
        return {"dropout": m.p}
    for cls, name in ((nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid")):
        if isinstance(m, cls):
            return name
    return None
