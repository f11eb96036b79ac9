"""Multi-layer perceptrons for MNIST, with and without the input carried forward: ``connlab skipmlp``'s networks."""

from __future__ import annotations

from torch import nn

from connlab.nn import ConcatSkip


def make_mlp(kind: str, hidden: int, layers: int):
    """(B, 1, 28, 28) -> logits (B, 10); ``skip`` carries the input forward by concatenation."""
    if kind == "skip":
        body = ConcatSkip(28 * 28, hidden, layers)  # (B, 784) -> (B, 784 + layers * hidden)
        return nn.Sequential(nn.Flatten(), body, nn.Linear(body.out_features, 10))
    dims = [28 * 28] + [hidden] * layers
    hidden_layers = [m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
    return nn.Sequential(nn.Flatten(), *hidden_layers, nn.Linear(hidden, 10))
