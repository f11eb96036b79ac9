"""The time-conditioned U-Net of DDPM (Ho et al. 2020, App. B), sized for MNIST.

It maps (x_t, t[, y]) to a tensor shaped like x_t; what that tensor means (ε, x_0
or v) is decided by the diffusion process in ``connlab.diffusion``, never here:
the network does not see β.

Shapes for the default config (28×28×1, channel_mults (1, 2, 2)):
28×28×32 → 14×14×64 → 7×7×64 (+ self-attention) → 14×14 → 28×28×1.
With 4 latent channels at 7×7, ``channel_mults=(1,)`` keeps everything at 7×7;
``(1, 2)`` goes 7 → 4 → 7 (upsampling targets the skip's size, so odd sizes work).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from connlab.nn.embedding import timestep_embedding  # noqa: F401 - also imported from here by older code


@dataclass(frozen=True)
class DiffusionUNetConfig:
    in_channels: int = 1
    out_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)  # one level each; len − 1 downsamplings
    num_res_blocks: int = 1  # per level, in encoder and decoder
    attention: bool = True  # self-attention at the lowest resolution
    num_heads: int = 4
    dropout: float = 0.1
    norm_groups: int = 8
    num_classes: int | None = None  # e.g. 10; label `num_classes` is the null class ∅ for CFG

    def __post_init__(self) -> None:
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be a non-empty tuple of positive ints, got {self.channel_mults}")
        for m in self.channel_mults:
            ch = self.base_channels * m
            if ch % self.norm_groups:
                raise ValueError(f"channels {ch} (base_channels × {m}) not divisible by norm_groups={self.norm_groups}")
        lowest = self.base_channels * self.channel_mults[-1]
        if self.attention and lowest % self.num_heads:
            raise ValueError(f"lowest-resolution channels {lowest} not divisible by num_heads={self.num_heads}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be None or >= 1, got {self.num_classes}")

    @property
    def time_dim(self) -> int:
        return 4 * self.base_channels


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + time embedding, GroupNorm → SiLU → dropout → conv, + skip."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        # conv2 keeps PyTorch's default init.  DDPM zero-initialises it (each block
        # starts as the identity), but with the final conv also at zero the
        # gradient reaching everything below the final conv is exactly zero on the
        # first step, and the time pathway stays silent for a step.  This network
        # is shallow (a handful of blocks), so the plain init is stable, and the
        # zero final conv alone gives the "predict 0" start.
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: (B, in_ch, H, W), emb: (B, time_dim) → (B, out_ch, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(emb))[:, :, None, None]  # (B, out_ch, 1, 1): one shift per channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, ch: int, num_heads: int, groups: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, H, W)."""
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, H·W, C/heads)
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √d) v
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj(h)


class Downsample(nn.Module):
    """Stride-2 3×3 conv: (B, C, H, W) → (B, C, ⌈H/2⌉, ⌈W/2⌉)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour resize to ``size`` then a 3×3 conv (avoids transposed-conv checkerboards)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """x: (B, C, h, w) → (B, C, *size)."""
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class Level(nn.Module):
    """One resolution of the encoder or decoder: res blocks, optional attention, optional resampler."""

    def __init__(self, blocks: list[ResBlock], attn: nn.Module, resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attn = attn
        self.resample = resample


class DiffusionUNet(nn.Module):
    """ε_θ(x_t, t[, y]): a U-Net with concatenated skips, conditioned on the step (and a label)."""

    def __init__(self, cfg: DiffusionUNetConfig = DiffusionUNetConfig()):
        super().__init__()
        self.cfg = cfg
        base, E, g = cfg.base_channels, cfg.time_dim, cfg.norm_groups
        chs = [base * m for m in cfg.channel_mults]
        n_levels = len(chs)

        def attn(ch: int, level: int) -> nn.Module:
            lowest = level == n_levels - 1
            return SelfAttention2d(ch, cfg.num_heads, g) if cfg.attention and lowest else nn.Identity()

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, E, cfg.dropout, g)

        self.time_mlp = nn.Sequential(nn.Linear(base, E), nn.SiLU(), nn.Linear(E, E))
        # One extra row for the null label ∅ = num_classes, used for classifier-free guidance.
        self.label_emb = nn.Embedding(cfg.num_classes + 1, E) if cfg.num_classes is not None else None
        self.stem = nn.Conv2d(cfg.in_channels, base, 3, padding=1)

        self.down = nn.ModuleList()
        ch = base
        for i, c in enumerate(chs):
            blocks = [res(ch if j == 0 else c, c) for j in range(cfg.num_res_blocks)]
            down = Downsample(c) if i < n_levels - 1 else None
            self.down.append(Level(blocks, attn(c, i), down))
            ch = c

        self.mid1, self.mid_attn, self.mid2 = res(ch, ch), attn(ch, n_levels - 1), res(ch, ch)

        self.up = nn.ModuleList()
        for i in reversed(range(n_levels)):
            c = chs[i]
            up = Upsample(ch) if i < n_levels - 1 else None
            blocks = [res(ch + c if j == 0 else c, c) for j in range(cfg.num_res_blocks)]
            self.up.append(Level(blocks, attn(c, i), up))
            ch = c

        self.out_norm = nn.GroupNorm(g, ch)
        self.out_conv = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)
        # Zero init: the network starts by predicting exactly 0 — for ε-prediction the
        # mean of the target — so the first loss is E‖ε‖² ≈ 1 and early gradients are tame.
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    @property
    def null_class(self) -> int | None:
        """The label index meaning "no label" (∅), or None for an unconditional network."""
        return self.cfg.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C_in, H, W); t: (B,) long or float step; y: (B,) long labels in
        [0, num_classes], num_classes = ∅, or None (all ∅).  Returns (B, C_out, H, W)."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels))  # (B, E)
        if self.label_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.cfg.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.label_emb(y)
        elif y is not None:
            raise ValueError("labels y were given but the network has num_classes=None")

        h = self.stem(x)
        skips = []
        for level in self.down:
            for block in level.blocks:
                h = block(h, emb)
            h = level.attn(h)
            skips.append(h)
            if level.resample is not None:
                h = level.resample(h)

        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)

        for level in self.up:
            skip = skips.pop()
            if level.resample is not None:
                h = level.resample(h, size=skip.shape[-2:])
            h = torch.cat([h, skip], dim=1)  # the U-Net skip: encoder features beside decoder features
            for block in level.blocks:
                h = block(h, emb)
            h = level.attn(h)

        return self.out_conv(F.silu(self.out_norm(h)))
