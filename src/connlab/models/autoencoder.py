"""The lecture's convolutional denoising autoencoder, without and with skip connections.

Encoder (lecture slide, Keras Functional API)::

    conv_1 = Conv2D(64, 3x3, relu, same)(x)          28x28x64
    MaxPooling2D(2x2)                                14x14x64
    conv_2 = Conv2D(128, 3x3, relu, same)            14x14x128
    MaxPooling2D(2x2)                                 7x7x128   -> returned with conv_1, conv_2

Bottleneck (the course's notebooks; ``bottleneck=16``; 0 = none, the slides' network)::

    Conv2D(16, 3x3, relu, same)                       7x7x16

Decoder::

    Conv2D(128, 3x3, relu, same) -> UpSampling2D(2x2)            14x14x128
    [skip: concatenate with conv_2 -> 14x14x256]
    Conv2D(64, 3x3, relu, same) -> UpSampling2D(2x2)             28x28x64
    [skip: concatenate with conv_1 -> 28x28x128]
    Conv2D(1, 3x3, sigmoid, same)                                28x28x1

``skip``: ``none`` (a plain encoder-decoder), ``concat`` (a U-Net: Ronneberger et al. 2015)
or ``add`` (the encoder map is summed into the decoder map of the same shape, a
residual-style skip as in He et al. 2015; no extra parameters).
``upsample``: ``nearest`` (Keras' UpSampling2D) or ``transpose`` (Conv2DTranspose, kernel 2,
stride 2, as the slide and the course's solution notebook offer).
``init``: ``torch`` (PyTorch's default) or ``keras`` (Glorot-uniform kernels, zero biases:
``connlab.nn.init.keras_init_``, how the course's numbers were trained).

Parameters: 296,449 (no skip) and 370,753 (concat) without a bottleneck; with the course's
16-filter bottleneck 185,873 and 260,177, the counts the course's notebooks print.

The network returns *logits*; the loss is BCE-with-logits (numerically stable) and
``torch.sigmoid`` is applied only to make images.

Sequential vs Functional (the lecture's Keras lesson in PyTorch terms): the no-skip network
is a straight chain, so it can be one ``nn.Sequential`` (``sequential_autoencoder``). The skip
variants cannot: a later layer reads an earlier layer's output, so the module's ``forward``
wires that graph by hand — what Keras' ``Model(inputs, outputs)`` works out from the tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from connlab.nn.init import keras_init_

SKIPS = ("none", "concat", "add")
UPSAMPLES = ("nearest", "transpose")
INITS = ("torch", "keras")
COURSE_BOTTLENECK = 16   # the course's ``thebottleneck``: Conv2D(16, 3x3) at 7x7


@dataclass(frozen=True)
class AutoencoderConfig:
    skip: str = "concat"
    upsample: str = "nearest"
    bottleneck: int = 0      # filters of a 3x3 conv at 7x7 between encoder and decoder; 0: none
    init: str = "torch"

    def __post_init__(self):
        if self.skip not in SKIPS:
            raise ValueError(f"skip {self.skip!r} is not one of {', '.join(SKIPS)}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample {self.upsample!r} is not one of {', '.join(UPSAMPLES)}")
        if not isinstance(self.bottleneck, int) or self.bottleneck < 0:
            raise ValueError(f"bottleneck must be an integer >= 0 (filters; 0: none), got {self.bottleneck!r}")
        if self.init not in INITS:
            raise ValueError(f"init {self.init!r} is not one of {', '.join(INITS)}")


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)  # Keras padding="same"


def upsampler(kind: str, channels: int) -> nn.Module:
    if kind == "transpose":
        return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
    return nn.Upsample(scale_factor=2, mode="nearest")


class Encoder(nn.Module):
    """(B, 1, 28, 28) -> pooled (B, 128, 7, 7), conv_1 (B, 64, 28, 28), conv_2 (B, 128, 14, 14)."""

    def __init__(self):
        super().__init__()
        self.conv1 = conv3x3(1, 64)
        self.conv2 = conv3x3(64, 128)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1 = torch.relu(self.conv1(x))
        c2 = torch.relu(self.conv2(self.pool(c1)))
        return self.pool(c2), c1, c2


class Bottleneck(nn.Module):
    """(B, 128, 7, 7) -> (B, filters, 7, 7): a 3x3 conv with ReLU and no pooling (the course's ``bottle_neck``)."""

    def __init__(self, filters: int):
        super().__init__()
        self.conv = conv3x3(128, filters)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(z))


class Decoder(nn.Module):
    """(B, c_in, 7, 7) [+ skips conv_1, conv_2] -> logits (B, 1, 28, 28); c_in = 128, or the bottleneck's filters."""

    def __init__(self, skip: str = "concat", upsample: str = "nearest", c_in: int = 128):
        super().__init__()
        self.skip = skip
        widen = 2 if skip == "concat" else 1  # concatenation doubles the channels the next conv reads
        self.conv3 = conv3x3(c_in, 128)
        self.up1 = upsampler(upsample, 128)
        self.conv4 = conv3x3(128 * widen, 64)
        self.up2 = upsampler(upsample, 64)
        self.out = conv3x3(64 * widen, 1)

    def merge(self, h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.skip == "concat":
            return torch.cat([h, skip], dim=1)
        if self.skip == "add":
            return h + skip
        return h

    def forward(self, z: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        h = self.up1(torch.relu(self.conv3(z)))    # (B, c_in, 7, 7) -> (B, 128, 14, 14)
        h = self.merge(h, c2)                      # (B, 256 | 128, 14, 14)
        h = self.up2(torch.relu(self.conv4(h)))    # (B, 64, 28, 28)
        h = self.merge(h, c1)                      # (B, 128 | 64, 28, 28)
        return self.out(h)                         # logits (B, 1, 28, 28)


class DenoisingAutoencoder(nn.Module):
    """The lecture's encoder-decoder; ``forward`` wires the skip graph. Returns logits."""

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder()
        self.bottleneck = Bottleneck(config.bottleneck) if config.bottleneck else None
        self.decoder = Decoder(config.skip, config.upsample, config.bottleneck or 128)
        if config.init == "keras":  # the course's numbers come from Keras' initialisation; draws from torch's RNG
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> logits (B, 1, 28, 28)."""
        z, c1, c2 = self.encoder(x)                # z: (B, 128, 7, 7)
        if self.bottleneck is not None:
            z = self.bottleneck(z)                 # (B, bottleneck, 7, 7)
        return self.decoder(z, c1, c2)


def sequential_autoencoder(upsample: str = "nearest", bottleneck: int = 0) -> nn.Sequential:
    """The no-skip network as one ``nn.Sequential`` (Keras' Sequential API): a straight chain.

    Returns logits like ``DenoisingAutoencoder(AutoencoderConfig("none", upsample, bottleneck))`` and
    has the same parameters in the same order, so their state dicts map one to one.
    """
    middle = [conv3x3(128, bottleneck), nn.ReLU()] if bottleneck else []
    return nn.Sequential(
        conv3x3(1, 64), nn.ReLU(), nn.MaxPool2d(2),
        conv3x3(64, 128), nn.ReLU(), nn.MaxPool2d(2),
        *middle,
        conv3x3(bottleneck or 128, 128), nn.ReLU(), upsampler(upsample, 128),
        conv3x3(128, 64), nn.ReLU(), upsampler(upsample, 64),
        conv3x3(64, 1),
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
