"""The two pixel ranges of the lab, named once.

Datasets hold uint8 pixels. Classifiers, autoencoders and the ladder work in [0, 1]
(``to_unit``); DDPM works in [-1, 1] (``unit_to_signed`` / ``signed_to_unit``).
Nothing else in the lab rescales images.
"""

from __future__ import annotations

import torch


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape) -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def unit_to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def signed_to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (clamped)."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 pixels (rounded, clamped)."""
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
