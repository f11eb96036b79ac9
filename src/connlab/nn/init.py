"""Keras' default initialisation, for the course's networks: Glorot-uniform kernels, zero biases.

PyTorch's layers start from Kaiming-uniform with a = √5 (and uniform biases); Keras' ``Conv2D``,
``Conv2DTranspose`` and ``Dense`` from Glorot-uniform (Glorot & Bengio 2010) with zero biases.
The course's numbers come from Keras, so ``--preset course`` starts its networks the Keras way.
"""

from __future__ import annotations

import torch
from torch import nn

KERAS_LAYERS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


@torch.no_grad()
def keras_init_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise every conv / linear layer of ``module`` in place; other layers are left alone."""
    for layer in module.modules():
        if isinstance(layer, KERAS_LAYERS):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
