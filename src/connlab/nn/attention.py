"""Attention (Vaswani et al. 2017), written out: a softmax gate over positions.

Each query position takes a weighted average of value vectors; the weights
are a softmax over how well the query matches each key. It is a gate in the
sense of ``gates.SoftmaxGate``, but over *positions* and computed from the
data itself.

Glossary (code -> symbol in Vaswani et al. 2017, Sec. 3.2):
    q, k, v       Q, K, V            queries, keys, values
    d             d_k                per-head key dimension
    weights       softmax(QKᵀ/√d_k)  attention weights, rows sum to 1
    num_heads     h                  number of heads, d_k = d_model / h
    mask          (bool)             True = this query may attend to this key

Masks here follow ``torch.nn.functional.scaled_dot_product_attention``:
True means *keep*. ``torch.nn.MultiheadAttention``'s bool ``attn_mask`` uses
the opposite convention (True = blocked); pass ``~mask`` there.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d) v  (Vaswani et al. 2017, Eq. 1).

    q (..., Lq, d), k (..., Lk, d), v (..., Lk, d_v); optional bool ``mask``
    broadcastable to (..., Lq, Lk), True = keep. Returns output (..., Lq, d_v)
    and weights (..., Lq, Lk). Every query must keep at least one key, or
    its row of weights is NaN.
    """
    d = q.shape[-1]
    # Dividing by √d keeps the logits' variance ~1 when q, k have unit-variance
    # entries, so the softmax does not saturate as d grows (Sec. 3.2.1).
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., Lq, Lk)
    if mask is not None:
        _check_mask(mask, scores.shape)
        # -inf becomes exactly 0 after the softmax: masked keys get no weight.
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., Lq, Lk)
    return weights @ v, weights  # (..., Lq, d_v), (..., Lq, Lk)


def _check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = keep), got dtype {mask.dtype}")
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the attention "
            f"scores of shape (..., Lq, Lk) = {tuple(scores_shape)}"
        )


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool (L, L) mask, True on and below the diagonal: position i sees j <= i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, Sec. 3.2.2).

    Parameters have the names and shapes of ``torch.nn.MultiheadAttention``
    (``in_proj_weight`` (3E, E) stacked q, k, v; ``in_proj_bias`` (3E,);
    ``out_proj``), so ``mine.load_state_dict(torch_mha.state_dict())`` works
    directly for a torch module built with ``batch_first=True`` and the same
    ``embed_dim``, ``num_heads``, ``bias``. The initialisation matches too.
    ``attention`` replaces ``scaled_dot_product_attention`` (same signature and
    returns), so a student's own function can run inside the block (notebook 04).
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True,
                 attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}); "
                f"head size would be {embed_dim} / {num_heads}"
            )
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.attention = attention or scaled_dot_product_attention
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        # As in PyTorch: Xavier for the q/k/v projection, zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, x_q: torch.Tensor, x_kv: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_q (B, Lq, E), x_kv (B, Lk, E) (default x_q: self-attention),
        bool mask broadcastable to (B, heads, Lq, Lk), True = keep, e.g.
        ``causal_mask(L)`` or a key-padding mask reshaped to (B, 1, 1, Lk).

        Returns out (B, Lq, E) and per-head weights (B, heads, Lq, Lk).
        """
        x_kv = x_q if x_kv is None else x_kv
        for name, x in (("x_q", x_q), ("x_kv", x_kv)):
            if x.dim() != 3 or x.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} must have shape (B, L, {self.embed_dim}), got {tuple(x.shape)}")
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        q = self._split_heads(F.linear(x_q, w_q, b_q))  # (B, heads, Lq, d)
        k = self._split_heads(F.linear(x_kv, w_k, b_k))  # (B, heads, Lk, d)
        v = self._split_heads(F.linear(x_kv, w_v, b_v))  # (B, heads, Lk, d)
        # Each head attends in its own d-dim subspace, so different heads can
        # pick out different relations at the cost of one full-width head.
        out, weights = self.attention(q, k, v) if mask is None else self.attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(x_q.shape[0], x_q.shape[1], self.embed_dim)  # (B, Lq, E)
        return self.out_proj(out), weights

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, L, d)


class TransformerBlock(nn.Module):
    """Pre-norm Transformer encoder block.

    x = x + attn(norm1(x)); x = x + mlp(norm2(x)). Input (B, L, dim), optional
    bool mask broadcastable to (B, heads, L, L) -> output (B, L, dim).

    Vaswani et al. 2017 normalise *after* the addition (post-norm); putting
    the norm inside the branch (Xiong et al. 2020, as in GPT-2) leaves the
    residual path an untouched sum, which trains stably without warm-up.
    The attention weights (B, heads, L, L) of the last forward pass are kept,
    detached, in ``self.last_attention`` for plotting. ``attention`` as in
    ``MultiHeadAttention``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0,
                 attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, attention=attention)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout)
        )
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        a, weights = self.attn(self.norm1(x), mask=mask)
        self.last_attention = weights.detach()
        x = x + self.drop(a)  # residual added to x, not to norm1(x)
        x = x + self.mlp(self.norm2(x))
        return x


class AttentionHead(nn.Module):
    """One attention head, as the course's toy exercise builds it (C24_IntroTransformer, the toy head).

    q = x W_q and k = x W_k map to the head size H, v = x W_v to ``value_size``, all without bias;
    weights = softmax(q kᵀ / √H) over the keys, with the causal (lower-triangular) mask when
    ``causal``: position t then sees positions ≤ t only, as GPT's heads do; BERT's see all.
    Input (B, L, dim) -> output (B, L, value_size) and weights (B, L, L). ``attention`` replaces
    ``scaled_dot_product_attention`` (same signature), so a student's own function can run inside.
    """

    def __init__(self, dim: int, head_size: int, value_size: int | None = None, causal: bool = True,
                 attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.causal, self.head_size = causal, head_size
        self.attention = attention or scaled_dot_product_attention
        self.q = nn.Linear(dim, head_size, bias=False)
        self.k = nn.Linear(dim, head_size, bias=False)
        self.v = nn.Linear(dim, value_size or dim, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, dim) -> out (B, L, value_size), weights (B, L, L)."""
        q, k, v = self.q(x), self.k(x), self.v(x)  # (B, L, H), (B, L, H), (B, L, value_size)
        if not self.causal:
            return self.attention(q, k, v)
        return self.attention(q, k, v, causal_mask(x.shape[1], device=x.device))
