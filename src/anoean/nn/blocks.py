"""Building blocks shared by every neural model: MLPs, conv encoders/decoders, seeded init.

These are plain ``nn.Module``s: they know no optimiser, file or numpy array. Weight
initialisation takes an explicit :class:`torch.Generator` so that building a model never
reads or advances torch's global RNG (the layers are created on the ``meta`` device first,
then materialised and initialised from the generator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def activation(name: str) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}")


class MLP(nn.Sequential):
    """Linear layers of widths ``dims`` with an activation between them (none after the last).

    ``spectral_norm=True`` wraps each linear layer in spectral normalisation (used by ALAD's
    discriminators). ``dropout`` is applied after each hidden activation.
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        act: str = "leaky_relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        out_act: str | None = None,
        spectral_norm: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
            lin: nn.Module = nn.Linear(a, b)
            if spectral_norm:
                lin = nn.utils.parametrizations.spectral_norm(lin)
            layers.append(lin)
            if i < len(dims) - 2:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(activation(act))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        if out_act is not None:
            layers.append(activation(out_act))
        super().__init__(*layers)


def conv_out_size(size: int, n_layers: int, kernel: int = 4, stride: int = 2, pad: int = 1) -> int:
    for _ in range(n_layers):
        size = (size + 2 * pad - kernel) // stride + 1
    return size


class ConvEncoder(nn.Module):
    """The paper's image encoder: 4x4 convolutions with stride 2 and 32, 64, 128 filters,
    LeakyReLU(0.2) after each, then a linear map of the flattened features to ``out_dim``.

    For 28x28 inputs the feature maps are 14x14, 7x7 and 3x3.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_dim: int,
        *,
        channels: Sequence[int] = (32, 64, 128),
        batch_norm: bool = False,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        c_in, h, w = (int(s) for s in in_shape)
        layers: list[nn.Module] = []
        for c in channels:
            conv: nn.Module = nn.Conv2d(c_in, c, kernel_size=4, stride=2, padding=1)
            if spectral_norm:
                conv = nn.utils.parametrizations.spectral_norm(conv)
            layers.append(conv)
            if batch_norm and c_in != in_shape[0]:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c
        self.features = nn.Sequential(*layers)
        oh, ow = conv_out_size(h, len(channels)), conv_out_size(w, len(channels))
        if oh < 1 or ow < 1:
            raise ValueError(
                f"images of shape {tuple(in_shape)} are too small for the conv encoder"
            )
        self.flat_dim = c_in * oh * ow
        head: nn.Module = nn.Linear(self.flat_dim, out_dim)
        if spectral_norm:
            head = nn.utils.parametrizations.spectral_norm(head)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """DCGAN-style generator for images: linear to (128, s, s), then transposed 4x4 stride-2
    convolutions 128 -> 64 -> 32 -> C, with a sigmoid output in [0, 1], cropped to (H, W)."""

    def __init__(self, in_dim: int, out_shape: Sequence[int], *, batch_norm: bool = True) -> None:
        super().__init__()
        c_out, h, w = (int(s) for s in out_shape)
        self.out_shape = (c_out, h, w)
        self.s = max(1, math.ceil(max(h, w) / 8))
        self.fc = nn.Sequential(nn.Linear(in_dim, 128 * self.s * self.s), nn.ReLU())
        blocks: list[nn.Module] = []
        for a, b in ((128, 64), (64, 32)):
            blocks.append(nn.ConvTranspose2d(a, b, 4, 2, 1))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(b))
            blocks.append(nn.ReLU())
        blocks += [nn.ConvTranspose2d(32, c_out, 4, 2, 1), nn.Sigmoid()]
        self.deconv = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.deconv(self.fc(z).view(-1, 128, self.s, self.s))
        c, h, w = self.out_shape
        return x[:, :, :h, :w]


@torch.no_grad()
def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Linear/Conv layer of ``module`` from ``generator``.

    Same distributions as PyTorch's defaults (Kaiming-uniform weights with a=sqrt(5), uniform
    biases in +-1/sqrt(fan_in)), but drawn from the given generator instead of the global one.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
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

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    def set(self, shift: np.ndarray, scale: np.ndarray) -> None:
        self.shift.copy_(torch.as_tensor(shift, dtype=self.shift.dtype))
        self.scale.copy_(torch.as_tensor(scale, dtype=self.scale.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale
