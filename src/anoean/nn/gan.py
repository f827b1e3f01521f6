"""The GAN baselines' networks: the originals' KDD MLPs and MNIST DCGAN-style conv nets.

Architectures follow the authors' TensorFlow code (read, not copied):

* AnoGAN and EGBAD: ``houssamzenati/Efficient-GAN-Anomaly-Detection`` (``gan/`` and
  ``bigan/``, ``kdd_utilities.py`` and ``mnist_utilities.py``);
* ALAD: ``houssamzenati/Adversarially-Learned-Anomaly-Detection`` (``alad/kdd_utilities.py``
  for the MLPs; ``alad/cifar10_utilities.py`` for its conv discriminators Dxx and Dzz).

Every discriminator returns ``(logits, features)`` where ``features`` is the intermediate
layer the originals use for feature matching (the layer right before the logit).

Where a 28x28 net hard-codes 7x7 feature maps we compute the sizes from the input shape, so
the same nets run on other image sizes (the tests use 8x8 digits): the generator starts from
``ceil(H/4) x ceil(W/4)`` maps and crops its output to ``(H, W)``.

Dropout draws its masks from an explicit :class:`torch.Generator` (:class:`SeededDropout`),
never from torch's global RNG, so training is reproducible for a seed and leaves user code's
random state alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from anoean.nn.blocks import conv_out_size, describe, raw_weight

# ----------------------------------------------------------------------------- primitives


class SeededDropout(nn.Module):
    """Element-wise dropout whose masks come from ``self.generator`` (set while training).

    Identity in eval mode. In training mode a generator must have been attached with
    :func:`set_dropout_generator`; this keeps training off torch's global RNG.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1); got {p}")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            raise RuntimeError("SeededDropout needs a generator in training mode")
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def spec(self) -> dict[str, Any]:
        """Its entry in the model's architecture (:func:`anoean.nn.blocks.describe`)."""
        return {"dropout": self.p}


def set_dropout_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    """Attach ``generator`` to every :class:`SeededDropout` in ``module`` (None detaches)."""
    for m in module.modules():
        if isinstance(m, SeededDropout):
            m.generator = generator


def _sn(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


def _linear(a: int, b: int, spectral_norm: bool = False) -> nn.Module:
    return _sn(nn.Linear(a, b), spectral_norm)


def _conv(c_in: int, c_out: int, k: int, s: int, spectral_norm: bool = False) -> nn.Module:
    # padding (k - 1) // 2 reproduces TensorFlow's 'SAME' output size ceil(n / s) for the
    # kernel/stride pairs used here (3/1, 3/2, 4/2 on even sizes, 5/2)
    return _sn(nn.Conv2d(c_in, c_out, k, s, padding=(k - 1) // 2), spectral_norm)


def _out_size(n: int, k: int, s: int) -> int:
    return conv_out_size(n, 1, kernel=k, stride=s, pad=(k - 1) // 2)


@torch.no_grad()
def init_original(module: nn.Module, scheme: str, generator: torch.Generator) -> nn.Module:
    """Initialise weights as the originals do, drawing from ``generator``; biases to zero.

    ``"xavier"``: Glorot-uniform (the KDD nets' ``xavier_initializer``); ``"normal"``:
    N(0, 0.02) (the MNIST nets' ``random_normal_initializer(stddev=0.02)``).
    """
    for m in module.modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            continue
        w = raw_weight(m)
        if scheme == "xavier":
            nn.init.xavier_uniform_(w, generator=generator)
        elif scheme == "normal":
            w.normal_(0.0, 0.02, generator=generator)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
        if m.bias is not None:
            m.bias.zero_()
    return module


# ------------------------------------------------------------------------ tabular (KDD) nets


class MLPGenerator(nn.Sequential):
    """KDD generator G(z): latent -> 64 -> 128 -> p, ReLU, linear output (all three models)."""

    def __init__(self, latent_dim: int, n_features: int) -> None:
        super().__init__(
            nn.Linear(latent_dim, 64),
            nn.ReLU(),
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Linear(128, n_features),
        )


class MLPEncoder(nn.Sequential):
    """KDD encoder E(x): p -> 64 -> latent with LeakyReLU (slope 0.1 in EGBAD, 0.2 in ALAD)."""

    def __init__(self, n_features: int, latent_dim: int, slope: float) -> None:
        super().__init__(nn.Linear(n_features, 64), nn.LeakyReLU(slope), nn.Linear(64, latent_dim))


class MLPDiscriminator(nn.Module):
    """AnoGAN's KDD discriminator D(x): p -> 256 -> 128 -> 128 (features) -> 1.

    LeakyReLU(0.1) and dropout 0.2 after each hidden layer.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((n_features, 256), (256, 128), (128, 128)):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.1), SeededDropout(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head(f).squeeze(-1), f


class MLPJointDiscriminator(nn.Module):
    """BiGAN discriminator D(x, z) for tables: x -> 128, z -> 128, concat -> 128 -> 1.

    EGBAD: LeakyReLU(0.1), dropout 0.2 on all three paths. ALAD's Dxz: LeakyReLU(0.2), batch
    norm on the x path and no dropout there, dropout 0.5 on the z and joint paths.
    """

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        *,
        slope: float,
        x_batch_norm: bool,
        x_dropout: float,
        dropout: float,
    ) -> None:
        super().__init__()
        x_layers: list[nn.Module] = [nn.Linear(n_features, 128)]
        if x_batch_norm:
            x_layers.append(nn.BatchNorm1d(128))
        x_layers.append(nn.LeakyReLU(slope))
        if x_dropout:
            x_layers.append(SeededDropout(x_dropout))
        self.x_path = nn.Sequential(*x_layers)
        self.z_path = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.LeakyReLU(slope), SeededDropout(dropout)
        )
        self.joint = nn.Sequential(nn.Linear(256, 128), nn.LeakyReLU(slope), SeededDropout(dropout))
        self.head = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.joint(torch.cat([self.x_path(x), self.z_path(z)], dim=1))
        return self.head(f).squeeze(-1), f


class PairDiscriminator(nn.Module):
    """ALAD's cycle discriminators on concatenated pairs: Dxx(x, x') and Dzz(z, z').

    ``hidden`` layers with LeakyReLU(0.2) and dropout 0.2; the last hidden layer is the
    feature layer. KDD: Dxx 2p -> 128 -> 1, Dzz 2d -> 32 -> 1. The conv version's Dzz is
    2d -> 64 -> 32 -> 1 with spectral normalisation on the hidden layers.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], *, spectral_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        a = 2 * in_dim
        for b in hidden:
            layers += [_linear(a, b, spectral_norm), nn.LeakyReLU(0.2), SeededDropout(0.2)]
            a = b
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(a, 1)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(torch.cat([u.flatten(1), v.flatten(1)], dim=1))
        return self.head(f).squeeze(-1), f


# ------------------------------------------------------------------------- image (MNIST) nets


def deconv_layers(c_out: int) -> list[nn.Module]:
    """Two 4x4 stride-2 transposed convolutions, 128 -> 64 (batch norm, ReLU) -> ``c_out``:
    the upsampling of the MNIST generators (with no output activation)."""
    return [
        nn.ConvTranspose2d(128, 64, 4, 2, 1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, c_out, 4, 2, 1),
    ]


class ConvGenerator(nn.Module):
    """The MNIST generator (AnoGAN, EGBAD): z -> 1024 -> 128 x h0 x w0 (batch norm, ReLU),
    two 4x4 stride-2 transposed convolutions 128 -> 64 -> C, tanh output, cropped to (H, W).

    For 28x28 images ``h0 = w0 = 7`` as in the original.
    """

    def __init__(self, latent_dim: int, out_shape: Sequence[int]) -> None:
        super().__init__()
        c, h, w = (int(s) for s in out_shape)
        self.out_shape = (c, h, w)
        self.h0, self.w0 = math.ceil(h / 4), math.ceil(w / 4)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, 128 * self.h0 * self.w0),
            nn.BatchNorm1d(128 * self.h0 * self.w0),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(*deconv_layers(c), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.deconv(self.fc(z).view(-1, 128, self.h0, self.w0))
        _, h, w = self.out_shape
        return x[:, :, :h, :w]

    def spec(self) -> dict[str, Any]:
        """Its architecture (:func:`anoean.nn.blocks.describe`), with the output crop."""
        return {
            "module": "ConvGenerator",
            "fc": describe(self.fc),
            "maps": [128, self.h0, self.w0],
            "deconv": describe(self.deconv),
            "out_shape": list(self.out_shape),
        }


class BiGANConvEncoder(nn.Module):
    """EGBAD's MNIST encoder: 3x3 convolutions 32 (stride 1), 64 and 128 (stride 2, batch
    norm), LeakyReLU(0.1), then a linear map to the latent space.

    ALAD applies spectral normalisation to its encoder convolutions (``spectral_norm=True``).
    """

    def __init__(
        self, in_shape: Sequence[int], latent_dim: int, *, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in in_shape)
        sn = spectral_norm
        self.features = nn.Sequential(
            _conv(c, 32, 3, 1, sn),
            nn.LeakyReLU(0.1),
            _conv(32, 64, 3, 2, sn),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.1),
            _conv(64, 128, 3, 2, sn),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.1),
        )
        oh, ow = _out_size(_out_size(h, 3, 2), 3, 2), _out_size(_out_size(w, 3, 2), 3, 2)
        self.head = nn.Linear(128 * oh * ow, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _x_conv_path(c: int, *, dropout: float, spectral_norm: bool) -> nn.Sequential:
    """The discriminators' image path: 4x4 stride-2 convolutions 64, 64 (batch norm on the
    second), LeakyReLU(0.1), optional dropout."""
    layers: list[nn.Module] = [_conv(c, 64, 4, 2, spectral_norm), nn.LeakyReLU(0.1)]
    if dropout:
        layers.append(SeededDropout(dropout))
    layers += [_conv(64, 64, 4, 2, spectral_norm), nn.BatchNorm2d(64), nn.LeakyReLU(0.1)]
    if dropout:
        layers.append(SeededDropout(dropout))
    return nn.Sequential(*layers)


def _x_conv_flat(h: int, w: int) -> int:
    return 64 * _out_size(_out_size(h, 4, 2), 4, 2) * _out_size(_out_size(w, 4, 2), 4, 2)


class ConvDiscriminator(nn.Module):
    """AnoGAN's MNIST discriminator: the image path, then 1024 units (batch norm,
    LeakyReLU(0.1); the feature layer), then the logit."""

    def __init__(self, in_shape: Sequence[int]) -> None:
        super().__init__()
        c, h, w = (int(s) for s in in_shape)
        self.x_path = _x_conv_path(c, dropout=0.0, spectral_norm=False)
        self.fc = nn.Sequential(
            nn.Linear(_x_conv_flat(h, w), 1024), nn.BatchNorm1d(1024), nn.LeakyReLU(0.1)
        )
        self.head = nn.Linear(1024, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.fc(self.x_path(x).flatten(1))
        return self.head(f).squeeze(-1), f


class ConvJointDiscriminator(nn.Module):
    """EGBAD's MNIST D(x, z): image path with dropout 0.5, z -> 512, concat -> 1024
    (features) -> 1. ALAD's Dxz uses it with spectral normalisation on every hidden layer."""

    def __init__(
        self, in_shape: Sequence[int], latent_dim: int, *, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in in_shape)
        sn = spectral_norm
        self.x_path = _x_conv_path(c, dropout=0.5, spectral_norm=sn)
        self.z_path = nn.Sequential(
            _linear(latent_dim, 512, sn), nn.LeakyReLU(0.1), SeededDropout(0.5)
        )
        self.joint = nn.Sequential(
            _linear(_x_conv_flat(h, w) + 512, 1024, sn), nn.LeakyReLU(0.1), SeededDropout(0.5)
        )
        self.head = nn.Linear(1024, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.joint(torch.cat([self.x_path(x).flatten(1), self.z_path(z)], dim=1))
        return self.head(f).squeeze(-1), f


class ConvPairDiscriminator(nn.Module):
    """ALAD's conv Dxx(x, x'): the pair stacked as channels, 5x5 stride-2 convolutions with
    64 and 128 filters (spectral norm, LeakyReLU(0.2), dropout 0.2), flattened (the feature
    layer), then the logit.

    The original concatenates the pair along an image axis (``axis=1`` of NHWC, i.e. height);
    stacking them as channels lets the first filters compare x and x' pixel by pixel.
    """

    def __init__(self, in_shape: Sequence[int]) -> None:
        super().__init__()
        c, h, w = (int(s) for s in in_shape)
        self.features = nn.Sequential(
            _conv(2 * c, 64, 5, 2, True),
            nn.LeakyReLU(0.2),
            SeededDropout(0.2),
            _conv(64, 128, 5, 2, True),
            nn.LeakyReLU(0.2),
            SeededDropout(0.2),
        )
        oh, ow = _out_size(_out_size(h, 5, 2), 5, 2), _out_size(_out_size(w, 5, 2), 5, 2)
        self.head = nn.Linear(128 * oh * ow, 1)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(torch.cat([u, v], dim=1)).flatten(1)
        return self.head(f).squeeze(-1), f
