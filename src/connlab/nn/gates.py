"""Multiplicative gates: one signal decides how much of another gets through.

A gate is a logistic (or softmax) unit whose output multiplies, rather than
adds to, another unit's activity. With a gate near 0 the gated signal is shut
off; near 1 it passes unchanged. This is the idea behind the GRU's update and
reset gates (Cho et al. 2014), gated linear units (Dauphin et al. 2017) and
mixtures of experts (Jacobs et al. 1991).

Glossary (code -> symbol):
    gate        g = σ(W x1 + b)       logistic gate, values in (0, 1)
    h           h(x2)                 the gated signal ("logistic" or "linear")
    a, b        GLU halves            GLU(x) = a ⊙ σ(b)
    g_k         softmax gate weight   Σ_k g_k = 1 over k experts
"""

from __future__ import annotations

import torch
from torch import nn

_H_CHOICES = ("logistic", "linear")


class LogisticGate(nn.Module):
    """A layer of logistic gates, g = σ(W x + b).

    Input (B, in_features) -> output (B, out_features), values in (0, 1).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x))


class ProductGatedUnit(nn.Module):
    """out = σ(W x1 + b) ⊙ h(x2): the signal x1 gates the signal x2.

    x1 (B, in_features) drives the gate; x2 (B, features) is the gated
    pre-activation; output (B, features). With ``h="linear"`` the unit passes
    x2 through scaled by the gate; with ``h="logistic"`` it passes σ(x2).
    """

    def __init__(self, in_features: int, features: int, h: str = "logistic") -> None:
        super().__init__()
        if h not in _H_CHOICES:
            raise ValueError(f"h must be one of {_H_CHOICES}, got {h!r}")
        self.h = h
        self.gate = LogisticGate(in_features, features)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(x2) if self.h == "logistic" else x2
        # Multiplicative interaction: g -> 0 shuts h off whatever its value.
        return self.gate(x1) * h


class GLU(nn.Module):
    """Gated linear unit (Dauphin et al. 2017): Linear to 2*out, then a ⊙ σ(b).

    Input (B, ..., in_features) -> output (B, ..., out_features).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.linear(x).chunk(2, dim=-1)  # each (B, ..., out_features)
        # The linear path a keeps a gradient that does not vanish with the
        # gate, which is why Dauphin et al. prefer it to tanh(a) ⊙ σ(b).
        return a * torch.sigmoid(b)


class SoftmaxGate(nn.Module):
    """Softmax gate over k choices, g = softmax(W x + b).

    Input (B, in_features) -> weights (B, k), each row sums to 1.
    """

    def __init__(self, in_features: int, k: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=-1)


class MixtureOfExperts(nn.Module):
    """Small mixture of experts over k groups of tanh hidden units.

    out = Σ_k g_k(x) · expert_k(x), with g = softmax gate computed from x
    (Jacobs et al. 1991). Input (B, in_features) -> output (B, out_features).

    The gate weights (B, k) of the last forward pass are kept, detached, in
    ``self.last_gate`` for plotting; ``self.gate(x)`` recomputes them.
    """

    def __init__(self, in_features: int, out_features: int, k: int) -> None:
        super().__init__()
        self.gate = SoftmaxGate(in_features, k)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, out_features), nn.Tanh()) for _ in range(k)
        )
        self.last_gate: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)  # (B, k)
        expert_out = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, k, out)
        self.last_gate = g.detach()
        # The experts compete: raising one g_k lowers the others.
        return (g.unsqueeze(-1) * expert_out).sum(dim=1)  # (B, out)
