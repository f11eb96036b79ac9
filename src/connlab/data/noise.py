"""Corruption of clean images for denoising: additive noise of a given magnitude, clipped.

``norm``:    x + mag · N(0, 1)
``uniform``: x + mag · U(-1, 1)   (zero mean, so both only blur the digit, never shift it)
Both are clipped to [0, 1] afterwards, as the lecture's notebook does with ``np.clip``.
Noise is drawn with an explicit ``torch.Generator`` on the images' device; inside a training
step under torchrun, each rank draws the whole global batch's noise and keeps its own rows
(``connlab.data.global_batch.batch_randn``), so every rank's generator stays in step.
"""

from __future__ import annotations

import torch

from connlab.data.global_batch import batch_rand, batch_randn

NOISE_DISTS = ("norm", "uniform")


def check_noise(magnitude: float, dist: str) -> None:
    if dist not in NOISE_DISTS:
        raise ValueError(f"noise distribution {dist!r} is not one of {', '.join(NOISE_DISTS)}")
    if not magnitude >= 0:  # also rejects NaN
        raise ValueError(f"noise magnitude must be a number >= 0, got {magnitude}")


def draw_noise(like: torch.Tensor, dist: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unit-scale noise of distribution ``dist`` with the shape, dtype and device of ``like``."""
    if dist == "norm":
        return batch_randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    if dist == "uniform":
        u = batch_rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return u * 2.0 - 1.0
    raise ValueError(f"noise distribution {dist!r} is not one of {', '.join(NOISE_DISTS)}")


def corrupt(x: torch.Tensor, magnitude: float, dist: str = "norm",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy copy of ``x`` (float in [0, 1], any shape), clipped to [0, 1]."""
    check_noise(magnitude, dist)
    return (x + magnitude * draw_noise(x, dist, generator)).clamp_(0.0, 1.0)


def salt_and_pepper(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The course's Exercise-1 noise: ``clip(x + round(U(-1, 1)), 0, 1)`` for ``x`` in [0, 1].

    round(U(-1, 1)) is −1 with probability ¼, +1 with ¼ and 0 with ½: a quarter of the pixels
    forced to 0 (pepper), a quarter to 1 (salt), half untouched. The course draws it once per set.
    """
    return (x + torch.round(draw_noise(x, "uniform", generator))).clamp_(0.0, 1.0)


def rounded_endpoint(x: torch.Tensor, magnitude: float, dist: str = "norm",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The course's diffusion end point x_T: ``clip(x + round(mag · noise), 0, 1)`` (noise ``norm`` or ``uniform``)."""
    check_noise(magnitude, dist)
    return (x + torch.round(magnitude * draw_noise(x, dist, generator))).clamp_(0.0, 1.0)
