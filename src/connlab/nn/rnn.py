"""Recurrent cells written from their equations, parameter-compatible with PyTorch.

``GRUCell`` and ``RNNCell`` use exactly the parameter names, shapes, gate order
and initialisation of ``torch.nn.GRUCell`` / ``torch.nn.RNNCell``, so
``mine.load_state_dict(torch_cell.state_dict())`` works and the outputs agree.

Glossary (code -> symbol in Cho et al. 2014, with PyTorch's gate order r, z, n):
    x, h          x_t, h_{t-1}        input and previous hidden state
    r             r_t                 reset gate
    z             z_t                 update gate
    n             h̃_t                 candidate state
    weight_ih     [W_ir; W_iz; W_in]  (3H, I), stacked in the order r, z, n
    weight_hh     [W_hr; W_hz; W_hn]  (3H, H)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _CellBase(nn.Module):
    """Shared parameters of a cell with ``gates`` stacked blocks of H rows."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's init: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _zero_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)


class GRUCell(_CellBase):
    """Gated recurrent unit cell (Cho et al. 2014), PyTorch's variant.

    Input x (B, I) and optional h (B, H) (zeros if None) -> new h (B, H)::

        r  = σ(W_ir x + b_ir + W_hr h + b_hr)
        z  = σ(W_iz x + b_iz + W_hz h + b_hz)
        n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 - z) ⊙ n + z ⊙ h

    Note: PyTorch (and cuDNN) apply r *after* the matrix product,
    r ⊙ (W_hn h + b_hn), whereas Cho et al. reset h *before* it, W_hn (r ⊙ h).
    They are different functions (r scales W_hn's outputs rather than its
    inputs) that behave much alike; PyTorch's form lets all three W_h· h
    products be done in one matrix multiply.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, gates=3)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = self._zero_state(x)
        gi = F.linear(x, self.weight_ih, self.bias_ih)  # (B, 3H)
        gh = F.linear(h, self.weight_hh, self.bias_hh)  # (B, 3H)
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        # z interpolates: z -> 1 copies the old state, which is what lets
        # information (and gradient) survive many steps.
        return (1 - z) * n + z * h


class RNNCell(_CellBase):
    """Elman tanh cell: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).

    Input x (B, I) and optional h (B, H) (zeros if None) -> new h (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, gates=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = self._zero_state(x)
        gi = F.linear(x, self.weight_ih, self.bias_ih)  # (B, H)
        gh = F.linear(h, self.weight_hh, self.bias_hh)  # (B, H)
        return torch.tanh(gi + gh)


class _Recurrent(nn.Module):
    """Runs ``self.cell`` over a batch-first sequence."""

    def __init__(self, cell: _CellBase) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, I), optional h0 (B, H) -> outputs (B, L, H), last hidden (B, H).

        Unlike ``torch.nn.GRU``, the last hidden state has no leading
        num_layers dimension: this is one layer.
        """
        if x.dim() != 3 or x.shape[1] == 0:
            raise ValueError(
                f"expected a batch-first sequence (B, L, I) with L >= 1, got shape {tuple(x.shape)}"
            )
        h = h0
        outputs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)  # (B, H)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h  # (B, L, H), (B, H)


class GRU(_Recurrent):
    """One GRU layer, batch first. Parameters live in ``self.cell``: the
    state_dict key ``cell.weight_ih`` is ``torch.nn.GRU``'s ``weight_ih_l0``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(GRUCell(input_size, hidden_size, bias))


class RNN(_Recurrent):
    """One tanh RNN layer, batch first. Parameters live in ``self.cell``: the
    state_dict key ``cell.weight_ih`` is ``torch.nn.RNN``'s ``weight_ih_l0``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(RNNCell(input_size, hidden_size, bias))
