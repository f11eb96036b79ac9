"""The Exercise-2 ladder beside DDPM, started from the same pure noise: the chains behind ``sidebyside.html``.

| code name        | symbol                         | meaning                                                   |
|------------------|--------------------------------|-----------------------------------------------------------|
| ``z``            | z ~ N(0, I), (B, 1, 28, 28)    | the one noise draw every chain on the page starts from    |
| ``ladder_start`` | x̂_T = Φ(z) ∈ (0, 1)            | the ladder's start; Φ is the standard normal CDF          |
| ``ddpm_start``   | x_T = z, or x_T = S(z)         | DDPM's start: pixel space z itself; latent space S(z)     |
| ladder step      | x̂_{t−1} = sigmoid(net(x̂_t, t)) | ``connlab ladder``'s chain, deterministic                 |
| DDPM step        | Ho et al. 2020, Alg. 2         | ancestral: fresh noise at every step (drawn from ``seed``) |

Where the ladder model comes from
---------------------------------
From a finished ``connlab ladder`` run (``connlab.experiments.ladder_chain.load_ladder``):
``connlab diffusion sample --run DIR --ladder-run LADDER_DIR`` stores the chains in the
diffusion run folder DIR (``connlab.sampling.sidebyside``) and ``connlab report`` renders them
as the page (``connlab.report.sidebyside``). The ladder is the user's own
Exercise-2 model (the one whose ``from_noise.png`` they have already seen), nothing is trained
here, and ``connlab demo`` passes its ladder part's folder. ``--ladder-variant`` picks one of a
sweep's models; by default the one the ladder run's own figures show.

How one noise draw becomes both starts
--------------------------------------
The two work in different spaces. DDPM starts from x_T ~ N(0, I) in the space it denoises:
pixels scaled to [−1, 1], or 4×7×7 standardised autoencoder latents. The ladder works on
pixels in [0, 1] and, like ``connlab ladder``'s ``from_noise.png``, starts "from pure noise"
at uniform U(0, 1) pixels — it was never trained on anything noisier than its top rung. One
draw z ~ N(0, I) of shape 1×28×28 serves all of them:

- ladder: x̂_T = Φ(z). Φ maps N(0, 1) exactly onto U(0, 1) and is monotone, so it is the same
  draw, pixel for pixel — bright where z is large — in the ladder's range;
- pixel DDPM: x_T = z unchanged (shown as (z + 1)/2, clipped, like every pixel state);
- latent DDPM: x_T = S(z), with S(z)[c, i, j] = ½ · (the four z values of row c of the 4×4
  pixel block that latent cell (i, j) covers), ``pixel_unshuffle`` then a sum over groups of 4.
  A sum of four independent N(0, 1) halved is N(0, 1) again, so x_T is an exact N(0, I)
  latent, built from every value of z once, each latent cell from its own 4×4 patch. Its
  first picture is the decoder's image of that noise.

DDPM then draws fresh noise at each step (so its x_0 is one of many from that start); DDIM
with η = 0, when the page shows it, is deterministic given x_T, like the ladder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab.diffusion.ladder import run_chain


@dataclass
class Ladder:
    """One trained ladder variant of a ``connlab ladder`` run."""

    model: torch.nn.Module
    name: str        # e.g. "T10-none"
    steps: int       # T, rungs of its ladder
    run: Path
    config: dict     # the ladder run's config (schedule, dist, mag, epochs, ...)


def shared_noise(num: int, seed: int, device) -> torch.Tensor:
    """z ~ N(0, I), (num, 1, 28, 28), from ``seed``: the draw every chain on the page starts from."""
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randn((num, 1, 28, 28), generator=g, device=device)


def ladder_start(z: torch.Tensor) -> torch.Tensor:
    """x̂_T = Φ(z): N(0, 1) pixels mapped monotonically onto U(0, 1). Same shape as z."""
    return torch.special.ndtr(z)


def ddpm_start(z: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T for a DDPM whose states have ``shape``: z (B, 1, 28, 28) itself for pixels; for a
    (C, 7, 7) latent, each latent value is the sum of 16/C pixel noises of its 4×4 patch,
    divided by √(16/C) so it is N(0, 1) again. Returns (B, *shape)."""
    if tuple(shape) == tuple(z.shape[1:]):
        return z
    C, H, W = shape
    r = z.shape[-1] // W
    group = r * r // C
    assert z.shape[-2:] == (H * r, W * r) and group * C == r * r, f"no noise map from {tuple(z.shape[1:])} to {shape}"
    patches = F.pixel_unshuffle(z, r)                                       # (B, r·r, H, W)
    return patches.view(len(z), C, group, H, W).sum(2) / math.sqrt(group)  # (B, C, H, W)


def chains(gen, ladder: Ladder, z: torch.Tensor, sampler: str = "ddpm", steps: int | None = None,
           eta: float = 0.0, guidance: float | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every state of each chain from the noise z (B, 1, 28, 28): name → (K + 1, B, 1, 28, 28) images in [0, 1].

    The ladder's chain, DDPM's (all T steps) and, unless ``sampler`` is DDPM, the chosen
    sampler's; DDPM's per-step noise comes from ``seed``.
    """
    with torch.no_grad():
        rungs = run_chain(ladder.model, ladder_start(z), ladder.steps)
    out = {f"ladder {ladder.name}": torch.stack(rungs)}
    x_T = ddpm_start(z, gen.shape)
    T = gen.cfg.timesteps
    out[f"DDPM-{T}"] = gen.sample("ddpm", T, len(z), guidance=guidance, seed=seed, trajectory=True, x_T=x_T)
    if sampler != "ddpm":
        k = gen.check(sampler, steps, guidance)
        name = f"{sampler.upper()}-{k}" + (f", η = {eta:g}" if eta else "")
        out[name] = gen.sample(sampler, k, len(z), eta, guidance, seed=seed, trajectory=True, x_T=x_T)
    return out
