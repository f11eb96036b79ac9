"""A recurrent layer read at its last step by a linear head: the network of ``connlab rnn``."""

from __future__ import annotations

import torch
from torch import nn

from connlab.nn import GRU, RNN

KINDS = ("rnn", "gru", "lstm")


class LastStepRegressor(nn.Module):
    """Sequences (B, L, 2) -> one number each (B,): the recurrent layer's last output, read by a linear head.

    ``kind``: ``rnn`` and ``gru`` are the lab's own cells (``connlab.nn``), ``lstm`` is PyTorch's.
    """

    def __init__(self, kind: str, hidden: int):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"recurrent layer {kind!r} is not one of {', '.join(KINDS)}")
        self.rnn = {"rnn": lambda: RNN(2, hidden), "gru": lambda: GRU(2, hidden),
                    "lstm": lambda: nn.LSTM(2, hidden, batch_first=True)}[kind]()
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, 2) -> prediction (B,)."""
        outputs = self.rnn(x)[0]                           # (B, L, H) for all three layers
        return self.head(outputs[:, -1]).squeeze(-1)       # (B,)
