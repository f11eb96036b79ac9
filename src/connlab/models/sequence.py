"""An encoder-only transformer over token sequences: the network of ``connlab attention``.

Token + learned position embeddings, a few pre-norm ``TransformerBlock``s, one linear read-out
per position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from connlab.nn.attention import TransformerBlock

VOCAB = 10  # the digits 0-9


@dataclass(frozen=True)
class SequenceModelConfig:
    length: int = 8
    vocab: int = VOCAB
    dim: int = 64
    depth: int = 2
    heads: int = 2
    mlp_ratio: int = 2

    def __post_init__(self):
        if self.heads < 1 or self.dim % self.heads != 0:
            raise ValueError(f"embedding size {self.dim} is not divisible by {self.heads} heads")


class SequenceTransformer(nn.Module):
    """Encoder-only transformer: tokens (B, L) -> logits (B, L, vocab), one prediction per position."""

    def __init__(self, cfg: SequenceModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embed = nn.Embedding(cfg.vocab, cfg.dim)
        # Position embeddings carry the only information about *where* a digit sits; reversal
        # is a pure function of position, so without them the task is impossible.
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.length, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) int64 -> logits (B, L, vocab)."""
        h = self.token_embed(tokens) + self.pos_embed[:, : tokens.shape[1]]  # (B, L, dim)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def attention_maps(self) -> list[torch.Tensor]:
        """Each block's weights (B, heads, L, L) from the last forward pass."""
        return [block.last_attention for block in self.blocks]
