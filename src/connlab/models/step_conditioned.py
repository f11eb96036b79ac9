"""The Exercise-1 U-Net, optionally told which ladder step it is undoing.

``condition``:
- ``none``: the plain U-Net (``DenoisingAutoencoder(skip="concat")``); t is ignored and the
  network must read the noise level off the image — the course's notebook.
- ``learned``: a table of T+1 vectors, one per step, added per channel to the bottleneck.
- ``sinusoidal``: the fixed sinusoidal features of t (Vaswani et al. 2017; as in the DDPM
  U-Net) through one linear layer, added per channel to the bottleneck.

The encoder's output (B, 128, 7, 7) is where the whole image is summarised, so one per-channel
shift there tells every decoder pixel the step at the cost of 128·(T+1) or 32·128+128
parameters. ``bottleneck`` and ``init`` are the U-Net's (``AutoencoderConfig``): the course's
network is ``bottleneck=16, init="keras"``; the shift comes before the bottleneck conv.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
from connlab.nn.embedding import timestep_embedding

CONDITIONS = ("none", "learned", "sinusoidal")
SINUSOID_DIM = 32
BOTTLENECK = 128  # channels of the U-Net's 7x7 bottleneck


@dataclass(frozen=True)
class StepConditionConfig:
    condition: str = "none"
    steps: int = 10
    skip: str = "concat"
    bottleneck: int = 0     # the U-Net's 7x7 bottleneck conv (the course's: 16); 0: none
    init: str = "torch"     # or "keras" (the course's Glorot-uniform start)

    def __post_init__(self):
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition {self.condition!r} is not one of {', '.join(CONDITIONS)}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def signature(self) -> dict:
        """The config a checkpoint is checked against: the fields at their defaults before ``bottleneck`` and
        ``init`` existed are left out, so run folders written before them still load and resume."""
        own = asdict(self)
        for name, default in (("bottleneck", 0), ("init", "torch")):
            if own[name] == default:
                del own[name]
        return own


class StepConditionedUNet(nn.Module):
    """U-Net whose bottleneck is shifted by an embedding of the step t. Returns logits."""

    def __init__(self, config: StepConditionConfig = StepConditionConfig()):
        super().__init__()
        self.config = config
        self.unet = DenoisingAutoencoder(AutoencoderConfig(skip=config.skip, bottleneck=config.bottleneck,
                                                           init=config.init))
        if config.condition == "learned":
            self.embed = nn.Embedding(config.steps + 1, BOTTLENECK)
            nn.init.zeros_(self.embed.weight)
        elif config.condition == "sinusoidal":
            self.embed = nn.Linear(SINUSOID_DIM, BOTTLENECK)
            nn.init.zeros_(self.embed.weight)
            nn.init.zeros_(self.embed.bias)
        # Zero init: every variant starts as exactly the plain U-Net, so a comparison
        # measures what the step signal adds, not a different starting point.

    def step_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) integers -> (B, 128, 1, 1)."""
        if self.config.condition == "learned":
            e = self.embed(t.long())
        else:
            e = self.embed(timestep_embedding(t, SINUSOID_DIM))
        return e[:, :, None, None]  # (B, 128, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1], t: (B,) steps -> logits of x_{t-1}, (B, 1, 28, 28)."""
        z, c1, c2 = self.unet.encoder(x)  # z: (B, 128, 7, 7)
        if self.config.condition != "none":
            z = z + self.step_embedding(t)
        if self.unet.bottleneck is not None:
            z = self.unet.bottleneck(z)    # (B, bottleneck, 7, 7)
        return self.unet.decoder(z, c1, c2)
