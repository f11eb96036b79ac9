"""Skip connections: carry an earlier layer forward, by concatenation or by addition.

* Concatenation (DenseNet, Huang et al. 2017): later layers see the earlier
  features unchanged, next to the new ones; the width grows.
* Addition (ResNet, He et al. 2015): the block learns a residual F(x) and
  outputs F(x) + x, so the identity is the easy default and the gradient
  has a path around every block.
"""

from __future__ import annotations

import torch
from torch import nn


class ConcatSkip(nn.Module):
    """DenseNet-style MLP block (Huang et al. 2017).

    Each layer sees the concatenation of the block input and every earlier
    layer's output, and adds ``growth`` new features. Input (B, in_features)
    -> output (B, in_features + num_layers * growth); the first
    ``in_features`` columns of the output are the input itself.
    """

    def __init__(self, in_features: int, growth: int, num_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features + i * growth, growth), nn.ReLU()) for i in range(num_layers)
        )
        self.out_features = in_features + num_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers:
            # Nothing is overwritten: x and all earlier features stay visible.
            h = torch.cat([h, layer(h)], dim=-1)  # (B, in_features + (i+1) * growth)
        return h


class _ConvBranch(nn.Sequential):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, the layers of a ResNet basic block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class ResidualBlock(nn.Module):
    """ResNet basic block (He et al. 2015): relu(F(x) + shortcut(x)).

    Input (B, C_in, H, W) -> output (B, C_out, H / stride, W / stride).
    The shortcut is the identity when shape is unchanged, otherwise a 1x1
    convolution with stride plus BN (the paper's "projection shortcut", option B).

    Setting the last BN weight of ``self.branch`` to zero makes F(x) = 0, so
    the block starts as (a ReLU of) its shortcut — the "zero-γ" init of
    Goyal et al. 2017, which helps very deep ResNets train.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.branch = _ConvBranch(in_channels, out_channels, stride)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The residual is added to the block's *input* x (through the
        # shortcut), not to a normalised or activated copy of it: that keeps a
        # clean identity path from output back to input.
        return self.relu(self.branch(x) + self.shortcut(x))


class PlainBlock(nn.Module):
    """The same layers as ``ResidualBlock`` without the shortcut: relu(F(x)).

    Input (B, C_in, H, W) -> output (B, C_out, H / stride, W / stride). He et
    al. 2015 show that stacks of these get *worse* training error as depth
    grows, the degradation problem residuals fix.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.branch = _ConvBranch(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x))


class IdentityBlock(nn.Module):
    """The course's "identity block" (the 1x1 -> 3x3 -> 1x1 bottleneck of He et al. 2015, Fig. 5 right).

    conv1x1(C -> h) -> ReLU -> conv3x3(h -> h) -> ReLU -> conv1x1(h -> C) -> ReLU, then, when
    ``residual``, + x. Input (B, C, H, W) -> output (B, C, H, W). No batch norm, as in the course.

    The input is added *after* the last ReLU, where the course's residual notebook adds it
    (He et al. add before it); without ``residual`` the block is the same three layers, plain.
    """

    def __init__(self, channels: int, hidden: int, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.branch = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, channels, 1), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.branch(x)              # (B, C, H, W), already through its last ReLU
        return h + x if self.residual else h


class ResidualMLPBlock(nn.Module):
    """Pre-norm residual MLP block: x + MLP(LayerNorm(x)).

    Input (B, ..., dim) -> output (B, ..., dim). The last linear layer is
    zero-initialised so the block starts as the exact identity.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        # Zero init: the residual branch contributes nothing at first, so a
        # deep stack starts as the identity and learns deviations from it.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise only the branch input; add to x itself, not to norm(x).
        return x + self.mlp(self.norm(x))
