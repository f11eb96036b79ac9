"""The small autoencoder of latent diffusion (Rombach et al. 2022, "Stable Diffusion"), for MNIST.

    encode: (B, 1, 28, 28) in [0, 1] → conv → 14×14 → 7×7 → 1×1 conv → z (B, latent_channels, 7, 7)
    decode: z → 7×7 → 14×14 → 28×28 → logits (B, 1, 28, 28)

784 pixels become 4 × 7 × 7 = 196 numbers; the diffusion U-Net then runs at 7×7, where one
step costs a small fraction of a 28×28 step.

**Plain bottleneck, not KL.**  Stable Diffusion's KL term (a tiny weight, ~1e-6) is there to
keep the latent scale tame and the latent space smooth.  Here both are done more directly:
- scale: after training, the per-channel mean and standard deviation of the training
  latents are stored as buffers (``latent_mean``, ``latent_std``) and ``encode`` returns
  standardised latents — the role of SD's ``scaling_factor``, with nothing to tune;
- smoothness: during training the decoder sees z plus Gaussian noise of 0.1 × the batch's
  latent std (``latent_noise``), so it also decodes the slightly-off latents a diffusion
  sampler produces.
A KL weight would be one more knob to tune by trial on a CPU budget that has no room for
trials; with a 4× compression of already simple digits the plain bottleneck reconstructs
well (measured: see ``connlab diffusion train --space latent``'s summary).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from connlab.data.global_batch import batch_randn  # torch.randn, or this rank's rows of the global batch's


@dataclass(frozen=True)
class LatentAEConfig:
    latent_channels: int = 4
    channels: int = 32
    latent_noise: float = 0.1  # decoder input noise during training, in units of the batch's latent std

    def __post_init__(self) -> None:
        if self.latent_channels < 1 or self.channels < 2:
            raise ValueError(f"latent_channels must be >= 1 and channels >= 2, got {self.latent_channels}, "
                             f"{self.channels}")


class LatentAutoencoder(nn.Module):
    """``encode`` to standardised 7×7 latents, ``decode`` back to pixel logits."""

    def __init__(self, cfg: LatentAEConfig = LatentAEConfig()):
        super().__init__()
        self.cfg = cfg
        c, h = cfg.channels, cfg.channels // 2
        self.encoder = nn.Sequential(
            nn.Conv2d(1, h, 3, padding=1), nn.SiLU(),                  # 28×28
            nn.Conv2d(h, c, 3, stride=2, padding=1), nn.SiLU(),        # 14×14
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.SiLU(),        # 7×7
            nn.Conv2d(c, cfg.latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, c, 3, padding=1), nn.SiLU(),  # 7×7
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c, h, 3, padding=1), nn.SiLU(),                  # 14×14
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(h, h, 3, padding=1), nn.SiLU(),                  # 28×28
            nn.Conv2d(h, 1, 3, padding=1),
        )
        # Standardisation of the latents, set by ``fit_latent_stats`` after training.
        self.register_buffer("latent_mean", torch.zeros(1, cfg.latent_channels, 1, 1))
        self.register_buffer("latent_std", torch.ones(1, cfg.latent_channels, 1, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] → standardised z (B, latent_channels, 7, 7)."""
        return (self.encoder(x) - self.latent_mean) / self.latent_std

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_channels, 7, 7), standardised → pixel logits (B, 1, 28, 28)."""
        return self.decoder(z * self.latent_std + self.latent_mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z → images in [0, 1], (B, 1, 28, 28)."""
        return torch.sigmoid(self.decode_logits(z).float())

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction logits (B, 1, 28, 28); ``noise`` (shaped like z) is scaled by
        ``latent_noise`` × the batch's latent std and added to z (training only)."""
        z = self.encoder(x)
        if noise is not None:
            z = z + self.cfg.latent_noise * z.detach().std() * noise
        return self.decoder(z)

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """BCE of the noisy-latent reconstruction of x (B, 1, 28, 28) in [0, 1]."""
        noise = batch_randn((x.shape[0], self.cfg.latent_channels, 7, 7), generator=generator, device=x.device)
        return F.binary_cross_entropy_with_logits(self(x, noise).float(), x)

    @torch.no_grad()
    def fit_latent_stats(self, x: torch.Tensor, chunk: int = 1000) -> None:
        """Set ``latent_mean`` / ``latent_std`` from images x (N, 1, 28, 28) in [0, 1]."""
        z = torch.cat([self.encoder(part) for part in x.split(chunk)])  # (N, C, 7, 7)
        self.latent_mean.copy_(z.mean(dim=(0, 2, 3), keepdim=True))
        self.latent_std.copy_(z.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
