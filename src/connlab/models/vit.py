"""A small Vision Transformer (Dosovitskiy et al. 2021) for 28x28 digits.

    image (B, 1, 28, 28)
      -> [optional conv stem: 3x3 convs at full resolution]     (B, C, 28, 28)
      -> patch embedding: a p x p conv with stride p            (B, dim, 28/p, 28/p)
      -> tokens, + learned position embeddings                  (B, N, dim), N = (28/p)^2
      -> [class token prepended]                                (B, 1 + N, dim)
      -> depth x TransformerBlock (pre-norm attention + MLP)
      -> LayerNorm, pool (class token or mean over patches), Linear -> logits (B, classes)

Why the optional stem: a plain ViT has to learn from 9,000 digits that neighbouring pixels
belong together; a few 3x3 convolutions give it that prior for free (Xiao et al. 2021,
"Early convolutions help transformers see better") and make it train much faster on small
data. The stem keeps the 28x28 resolution, so the attention maps still live on the patch grid.

Glossary (code -> Dosovitskiy et al. 2021, Eq. 1-4): ``cls_token`` x_class, ``pos_embed``
E_pos, ``patch_embed`` E, ``blocks`` the L encoder layers, ``head`` the MLP head on z_L^0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from connlab.nn.attention import TransformerBlock

POOLS = ("cls", "mean")


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 28
    in_channels: int = 1
    patch_size: int = 4
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    pool: str = "cls"          # cls: classify the class token; mean: average the patch tokens
    stem_channels: int = 0     # 0: plain ViT; C > 0: a 3x3 conv (1 -> C) + BatchNorm + GELU before patching
    dropout: float = 0.0
    num_classes: int = 10

    def __post_init__(self):
        if self.patch_size < 1 or self.image_size % self.patch_size != 0:
            divisors = [d for d in range(1, self.image_size + 1) if self.image_size % d == 0]
            raise ValueError(f"patch size {self.patch_size} does not divide the image size {self.image_size}; "
                             f"choose one of {', '.join(map(str, divisors))}")
        if self.heads < 1 or self.dim % self.heads != 0:
            raise ValueError(f"embedding size {self.dim} is not divisible by {self.heads} heads")
        if self.pool not in POOLS:
            raise ValueError(f"pool {self.pool!r} is not one of {', '.join(POOLS)}")
        if self.stem_channels < 0:
            raise ValueError(f"stem channels must be >= 0, got {self.stem_channels}")

    @property
    def grid(self) -> int:
        """Patches per side: the attention maps are grid x grid."""
        return self.image_size // self.patch_size


def conv_stem(in_channels: int, channels: int) -> nn.Sequential:
    """A 3x3 conv + BatchNorm + GELU at full resolution: (B, in, H, W) -> (B, channels, H, W).

    One layer is enough here: it makes neighbouring patches overlap (each token now sees a
    (p + 2) x (p + 2) window) and hands the patch embedding local edge features. A second
    full-resolution conv is left out to keep the CPU default within a few minutes.
    """
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.GELU())


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stem_out = cfg.stem_channels or cfg.in_channels
        self.stem = conv_stem(cfg.in_channels, cfg.stem_channels) if cfg.stem_channels else nn.Identity()
        # A p x p conv with stride p is exactly "cut into patches, flatten, Linear" (Eq. 1).
        self.patch_embed = nn.Conv2d(stem_out, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pool == "cls" else None
        # Small random init (std 0.02, as in the reference ViT): every position starts
        # distinguishable but the embeddings do not swamp the patch content.
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.grid ** 2, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 28, 28) in [0, 1] -> logits (B, num_classes)."""
        h = self.patch_embed(self.stem(x))  # (B, dim, g, g)
        h = h.flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, dim)
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(len(h), -1, -1), h], dim=1)  # (B, 1 + N, dim)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        pooled = h[:, 0] if self.cls_token is not None else h.mean(dim=1)  # (B, dim)
        return self.head(pooled)

    def attention_maps(self) -> list[torch.Tensor]:
        """Each block's attention weights (B, heads, T, T) from the last forward pass."""
        return [block.last_attention for block in self.blocks]


def patch_relevance(attention: torch.Tensor, has_cls: bool) -> torch.Tensor:
    """How much the pooled output reads each patch, from one (B, T, T) attention matrix.

    With a class token: its row, without the class-token column. With mean pooling: the
    mean over all query rows (what the average of the outputs takes from each key).
    Returns (B, N) over the patch tokens.
    """
    if has_cls:
        return attention[:, 0, 1:]
    return attention.mean(dim=1)


def attention_rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each output token draws on each input token.

    Each layer's head-averaged attention A (B, T, T) is mixed with the identity for the
    residual path, Â = (A + I) / 2 (rows still sum to 1), and the layers are multiplied in
    order: R = Â_L ... Â_1. Returns R (B, T, T).
    """
    rollout = None
    for weights in maps:
        a = weights.mean(dim=1)  # (B, T, T), averaged over heads
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout
