"""The course's residual-notebook network: a conv stem, N identity blocks, a small dense head.

The CIML summer institute's notebook ``CIML23_MNIST_wResidConnections_v0`` classifies noisy
MNIST digits with this network, built with or without the residual additions:

    stem     conv3x3(1 -> 64, "same") + ReLU, max-pool 2        (B, 64, 14, 14)
    blocks   N x IdentityBlock(64, hidden 16)                   (B, 64, 14, 14)
    head     flatten -> dense 32 + ReLU -> dense 10             (B, 12544) -> (B, 10) logits

The course ends with a softmax; this module returns the logits and the loss applies the
softmax (``connlab.experiments.depth_course``). Keras flattens (H, W, C) where PyTorch flattens
(C, H, W): the same dense layer up to a permutation of its inputs, so nothing changes.
Plain and residual nets have the same layers and parameter count: the addition has no weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from connlab.nn import IdentityBlock


@dataclass(frozen=True)
class IdentityCNNConfig:
    blocks: int = 3           # identity blocks (the course's ``numlayers``)
    residual: bool = False    # add each block's input after its last ReLU (the course's ``use_skipadd``)
    width: int = 64           # stem filters = block input/output channels
    hidden: int = 16          # the blocks' bottleneck filters
    dense: int = 32           # the hidden dense layer
    num_classes: int = 10

    def __post_init__(self):
        if self.blocks < 0:
            raise ValueError(f"blocks (identity blocks) must be >= 0, got {self.blocks}")
        for name in ("width", "hidden", "dense"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")


class IdentityCNN(nn.Module):
    """(B, 1, 28, 28) images in [0, 1] -> logits (B, num_classes)."""

    def __init__(self, config: IdentityCNNConfig = IdentityCNNConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.stem = nn.Sequential(nn.Conv2d(1, c.width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.blocks = nn.Sequential(*(IdentityBlock(c.width, c.hidden, c.residual) for _ in range(c.blocks)))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c.width * 14 * 14, c.dense), nn.ReLU(),
                                  nn.Linear(c.dense, c.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, 28, 28) -> logits (B, num_classes)."""
        h = self.blocks(self.stem(x))   # (B, width, 14, 14)
        return self.head(h)
