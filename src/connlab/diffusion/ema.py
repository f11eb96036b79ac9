"""Exponential moving average of a network's parameters, for sampling.

| code name     | symbol                                  | where                               |
|---------------|-----------------------------------------|-------------------------------------|
| ``shadow``    | θ̄ (the averaged weights)                | Ho et al. 2020, App. B (decay 0.9999)|
| ``decay``     | d, the largest decay used               |                                     |
| ``decay_t``   | d_n = min(d, (1 + n) / (10 + n))        | TensorFlow ``ExponentialMovingAverage(num_updates=)`` |
| ``update()``  | θ̄ ← d_n θ̄ + (1 − d_n) θ                 |                                     |

DDPM samples from the EMA weights, not the raw ones: the raw weights jitter
from step to step, and a sampler that calls the network T times compounds the
jitter.  Two ways this goes wrong — both give the classic "EMA samples are
black (or grey)" symptom:

1. **Averaging buffers.**  BatchNorm running statistics, step counters or
   schedule constants stored as buffers are not weights.  Averaging them mixes
   a stale statistic (or a stale β table) with the current weights; the
   network then sees inputs normalised by the wrong mean and variance, and the
   output collapses to a constant.  Here buffers are *copied* from the model at
   every update, never averaged.
2. **No warm-up.**  With d = 0.9999 the shadow still equals the random
   initialisation after thousands of steps (0.9999^5000 ≈ 0.6), so early
   samples come from a network that predicts nothing useful.  The warm-up
   d_n = min(d, (1 + n)/(10 + n)) lets the shadow follow the model closely at
   first and only later average over a long window.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A shadow copy of ``model`` whose parameters are averaged over updates.

    ``ema.module`` is the shadow network, ready to sample with (eval mode, no
    gradients).  Call ``update()`` after every optimiser step.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.model = model
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        # the pairs are fixed once: update() runs after every optimiser step
        pairs = list(zip(self.module.parameters(), model.parameters(), strict=True))
        self._shadows = [s for s, _ in pairs if s.dtype.is_floating_point]
        self._params = [p for s, p in pairs if s.dtype.is_floating_point]
        self._copied = [(s, p) for s, p in pairs if not s.dtype.is_floating_point]

    def decay_t(self) -> float:
        """The decay the next ``update()`` will use."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        """θ̄ ← d_n θ̄ + (1 − d_n) θ for parameters; buffers are copied as they are."""
        d = self.decay_t()
        if self._shadows:  # one fused launch per group of tensors, not one per tensor (matters on GPUs)
            torch._foreach_lerp_(self._shadows, self._params, 1.0 - d)
        for shadow, p in self._copied:
            shadow.copy_(p)
        for shadow, b in zip(self.module.buffers(), self.model.buffers(), strict=True):
            shadow.copy_(b)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged parameters (and the copied buffers) into ``model``."""
        model.load_state_dict(self.module.state_dict())

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": self.module.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.warmup = state["warmup"]
        self.num_updates = state["num_updates"]
        self.module.load_state_dict(state["shadow"])
