"""A small ResNet for 28x28 images and an equally deep plain network (He et al. 2015).

The two networks are built by one class and differ in one thing only: each block is a
``ResidualBlock`` (relu(F(x) + shortcut(x))) or a ``PlainBlock`` (relu(F(x))), with the same
F — conv3x3, BN, ReLU, conv3x3, BN. So they have the same depth, widths and layers; the
residual net has extra parameters only in its projection shortcuts (a 1x1 conv + BN where a
stage changes the width and the resolution).

Layout, the CIFAR ResNet of He et al. §4.2 scaled to 28x28 (the stem halves the
resolution, which makes every block 4x cheaper on a CPU and costs MNIST nothing):

    stem      conv3x3(1 -> w, stride 2) + BN + ReLU          (B, w, 14, 14)
    stage 1   n1 blocks, width w                             (B, w, 14, 14)
    stage 2   n2 blocks, width 2w, first one with stride 2   (B, 2w, 7, 7)
    stage 3   n3 blocks, width 4w, first one with stride 2   (B, 4w, 4, 4)
    head      global average pool + linear                   (B, classes)

``depth`` is the number of blocks, n1 + n2 + n3, split as evenly as possible (depth 8 ->
3, 3, 2); a stage with no block is left out. Each block holds two weighted layers, so the
network has 2 * depth + 2 weighted layers (stem and head included): depth 20 -> 42 layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from connlab.nn import PlainBlock, ResidualBlock


@dataclass(frozen=True)
class ResNetConfig:
    depth: int = 8          # blocks (each two 3x3 convs)
    width: int = 16         # channels of stage 1; stages 2 and 3 have 2x and 4x
    residual: bool = True   # ResidualBlock, or PlainBlock (the same layers, no shortcut)
    num_classes: int = 10

    def __post_init__(self):
        if self.depth < 1:
            raise ValueError(f"depth (number of blocks) must be >= 1, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")

    @property
    def stage_blocks(self) -> tuple[int, int, int]:
        """Blocks per stage: depth split as evenly as possible, earlier stages first."""
        q, r = divmod(self.depth, 3)
        return tuple(q + (1 if s < r else 0) for s in range(3))

    @property
    def weighted_layers(self) -> int:
        return 2 * self.depth + 2


class ResNet(nn.Module):
    """Plain or residual network for (B, 1, 28, 28) images -> logits (B, num_classes)."""

    def __init__(self, config: ResNetConfig = ResNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        block = ResidualBlock if config.residual else PlainBlock
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        blocks, channels = [], w
        for stage, n in enumerate(config.stage_blocks):
            width = w * 2 ** stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, 28, 28) -> logits (B, num_classes)."""
        h = self.blocks(self.stem(x))    # (B, C, H', W')
        return self.head(h.mean(dim=(2, 3)))  # global average pool -> (B, C) -> (B, classes)
