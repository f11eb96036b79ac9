"""Sinusoidal embedding of a step number (Vaswani et al. 2017, sec. 3.5; Ho et al. 2020, the U-Net's t).

| code name    | symbol                    |
|--------------|---------------------------|
| ``t``        | the step (possibly fractional), one per batch row |
| ``freqs``    | ω_k = max_period^(−k / (dim/2)), k = 0 … dim/2 − 1 |
"""

from __future__ import annotations

import math

import torch


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) steps.

    t: (B,) → (B, dim), [sin(t ω_k), cos(t ω_k)] with ω_k = max_period^(−k / (dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)
