"""A small MNIST CNN: the classifier behind the diffusion quality metric.

Two conv stages and a narrow fully connected layer whose output is the feature
vector the Fréchet distance compares (the role Inception's pool3 plays in FID,
Heusel et al. 2017):

    (B, 1, 28, 28) → conv 3×3, pool → (B, c1, 14, 14) → conv 3×3, pool → (B, c2, 7, 7)
                   → flatten → linear → ReLU → features (B, feature_dim) → linear → logits (B, 10)

It is deliberately lean (~1 M multiply-adds per image): it has to train in well under a
minute on two busy CPU cores, because ``connlab diffusion`` trains one on the fly when no
classifier run is given.  The feature layer is kept narrow (64 by default) on purpose: the Fréchet distance
estimates a feature_dim × feature_dim covariance, and with a few hundred samples a
2048-dimensional covariance would be mostly estimation noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (16, 32)
    feature_dim: int = 64
    num_classes: int = 10
    dropout: float = 0.25

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ValueError(f"channels must be two positive ints, got {self.channels}")
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")


def conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 conv + BatchNorm + ReLU, then 2×2 max-pool: (B, c_in, H, W) → (B, c_out, H/2, W/2)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class MnistClassifier(nn.Module):
    """Logits for 10 digit classes from images in [0, 1]; ``features`` gives the penultimate layer."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        c1, c2 = cfg.channels
        self.body = nn.Sequential(conv_stage(1, c1), conv_stage(c1, c2))
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(c2 * 7 * 7, cfg.feature_dim),
                                   nn.ReLU())
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] → penultimate features (B, feature_dim)."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] → logits (B, num_classes)."""
        return self.head(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
