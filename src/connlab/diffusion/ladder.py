"""The noise ladder of Exercise 2: incremental denoising with T steps.

| code name          | symbol            | meaning                                                    |
|--------------------|-------------------|------------------------------------------------------------|
| ``T``              | T (``steps2use``) | rungs above the clean image; x_0 is clean, x_T the noisiest |
| ``mag``            | ``mag2use``       | noise magnitude                                            |
| ``dist``           | ``dist2try``      | ``norm``: z ~ N(0, 1);  ``uniform``: z ~ U(−1, 1) (var 1/3) |
| ``a[t]``, ``b[t]`` | a_t, b_t          | one rung: x_t = clip(a_t · x_{t−1} + b_t · z_t), t = 1 … T  |
| ``gain[t]``        | A_t = ∏_{s≤t} a_s | what is left of x_0 in x_t (before clipping)               |
| ``sigma[t]``       | σ_t               | std of x_t − A_t x_0 in units of z: σ_t² = a_t² σ_{t−1}² + b_t² |

What the ladder is
------------------
The lecture's notebook (``steps2use = 10``, ``dist2try = 'norm'``, ``mag2use = 1``) makes,
for every training image x_0, a sequence of ever noisier copies x_1 … x_T, stacks them
into a training set N × (T+1) images large, and trains the Exercise-1 U-Net to map image
t to image t−1 — "like training to predict noise diffusion". To generate, it applies the
network T times: x̂_{t−1} = net(x̂_t), from x̂_T down to x̂_0.

Each rung adds an independent draw of noise to the rung below and clips to [0, 1]
*at every step* (so every rung is an image, as ``np.clip`` in the notebook)::

    x_t = clip(a_t · x_{t−1} + b_t · z_t, 0, 1),   z_t iid ``dist``, unit scale

Schedules (``SCHEDULES``), with σ_t the noise std at rung t *without* clipping, for
``norm`` (multiply by 1/√3 for ``uniform``):

- ``notebook`` (default): a_t = 1, b_t = mag / T — T equal increments of scale mag/T
  whose scales add up to mag. The increments are independent, so their *variances* add:
  σ_t = mag · √t / T, and the top rung carries std mag / √T (0.32 for T = 10, mag = 1),
  not mag. The digit stays visible at x_T.
- ``ve`` (variance exploding, a random walk whose total std reaches mag):
  a_t = 1, b_t = mag / √T, σ_t = mag · √(t/T); σ_T = mag.
- ``vp`` (variance preserving, Ho et al. 2020 eq. 2 with the cosine ᾱ of Nichol &
  Dhariwal 2021): a_t = √(1 − β_t), b_t = mag · √β_t, so x_t = √ᾱ_t x_0 + mag · √(1 − ᾱ_t) ε
  (A_t = √ᾱ_t, σ_t = mag · √(1 − ᾱ_t)); at t = T, ᾱ ≈ 0: x_T is (clipped) pure noise.

Clipping makes the clipped rungs' noise smaller than σ_t near 0 and 1 (and "vp" no longer
exactly variance preserving); ``clip=False`` gives the textbook process, used by the tests.

On the fly instead of N × (T+1) copies
---------------------------------------
``ladder_pair`` draws (x_t, x_{t−1}) for a batch with a per-sample t on the device, by
walking the batch up the ladder (T cheap element-wise steps next to one U-Net pass), so
x_t is exactly one rung above x_{t−1} and every epoch sees fresh noise. ``materialize``
reproduces the notebook: the whole (T+1, N, 1, 28, 28) float32 stack, (T+1)·N·784·4
bytes — 310 MB for the 9,000 embedded digits at T = 10, 2.07 GB for full MNIST — and one
fixed noise draw reused every epoch.

How this differs from DDPM's ε-prediction (``connlab diffusion``)
-----------------------------------------------------------------
DDPM (Ho et al. 2020) trains on *one* random t per image from a closed-form marginal
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, tells the network t, and asks it for the noise ε; the
sampler turns ε̂ into the mean of p(x_{t−1} | x_t) and *adds fresh noise* of the posterior
variance at every step, so each step is a draw, not an average. The ladder asks the
network for x_{t−1} itself (a regression with BCE), usually does not tell it t (it must
guess the noise level from the image; ``--condition`` adds t), and applies it
deterministically. A regression onto x_{t−1} learns the *conditional mean*
E[x_{t−1} | x_t]: a blurred average of all the images that could have led to x_t.

Why samples from pure noise look the way they do
------------------------------------------------
Measured (``connlab ladder --steps 10 --dist norm --mag 1 --epochs 2``, embedded MNIST,
9,000 train digits, 2 shared CPU cores, 736 s of training; 500 class-stratified test digits):
PSNR against the clean digit along the chain x_10 -> x̂_0 is 11.3, 12.3, 12.8, 13.2, 13.5,
13.9, 14.5, 15.2, 15.9, 16.1, 15.5 dB — it rises in 9 of 10 steps, +4.2 dB in all; the last
step over-darkens and thin strokes (a "1") fade. Each early output beats the true rung it
stands for (12.3 dB vs 11.8 at t = 9), the mark of a conditional mean; the late ones fall
behind it (15.5 vs ∞ at t = 0) because the chain feeds its own smooth outputs back, inputs
unlike the noisy rungs it was trained on, and isolated noise pixels survive as bright dots.

From pure random input (U(0, 1) pixels) the chain produces neither digits nor blobs but
a binarised maze of short stroke fragments: it darkens a rim at the border, pushes
each pixel towards 0 or 1, and keeps ~38 % of pixels lit (real digits: 13 %). Why: under
``notebook`` the top rung has noise std only mag/√T = 0.32 around a *visible* digit, so the
network has learnt "noise is small, ink is where the bright pixels are"; U(0, 1) input,
never seen in training, reads as ink everywhere and is sharpened, not reorganised. And the
chain is deterministic: nothing re-injects noise to commit to one digit, each step just
averages over what its input could have come from. DDPM's ε-prediction with a top rung of
pure noise (ᾱ_T ≈ 0, as ``vp`` has) and a stochastic step is what turns noise into digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from connlab.data.noise import NOISE_DISTS, draw_noise

SCHEDULES = ("notebook", "ve", "vp")
DIST_STD = {"norm": 1.0, "uniform": 1.0 / math.sqrt(3.0)}  # std of the unit-scale draw z


@dataclass(frozen=True)
class LadderSchedule:
    """A T-rung noise ladder: x_t = clip(a_t x_{t−1} + b_t z_t) for t = 1 … T."""

    name: str = "notebook"
    T: int = 10
    mag: float = 1.0
    dist: str = "norm"
    clip: bool = True

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise ValueError(f"ladder schedule {self.name!r} is not one of {', '.join(SCHEDULES)}")
        if not (isinstance(self.T, int) and self.T >= 1):
            raise ValueError(f"--steps must be an integer >= 1, got {self.T}")
        if not (self.mag >= 0 and math.isfinite(self.mag)):
            raise ValueError(f"--mag must be a finite number >= 0, got {self.mag}")
        if self.dist not in NOISE_DISTS:
            raise ValueError(f"noise distribution {self.dist!r} is not one of {', '.join(NOISE_DISTS)}")

    def coefficients(self) -> tuple[list[float], list[float]]:
        """(a, b), each of length T+1; index t is rung t (index 0 unused: a=1, b=0)."""
        T, mag = self.T, self.mag
        if self.name == "notebook":
            a, b = [1.0] * T, [mag / T] * T
        elif self.name == "ve":
            a, b = [1.0] * T, [mag / math.sqrt(T)] * T
        else:  # vp: reuse the DDPM cosine β_t so the ladder and DDPM share one schedule
            from connlab.diffusion.schedule import NoiseSchedule

            betas = NoiseSchedule.cosine(T).betas.double().tolist()
            a, b = [math.sqrt(1.0 - beta) for beta in betas], [mag * math.sqrt(beta) for beta in betas]
        return [1.0] + a, [0.0] + b

    def gain(self) -> list[float]:
        """A_t = ∏_{s≤t} a_s for t = 0 … T."""
        a, _ = self.coefficients()
        return [math.prod(a[1:t + 1]) for t in range(self.T + 1)]

    def sigma(self) -> list[float]:
        """σ_t for t = 0 … T, in units of z (unclipped): σ_t² = a_t² σ_{t−1}² + b_t²."""
        a, b = self.coefficients()
        var = [0.0]
        for t in range(1, self.T + 1):
            var.append(a[t] ** 2 * var[-1] + b[t] ** 2)
        return [math.sqrt(v) for v in var]

    def noise_std(self) -> list[float]:
        """Std of x_t − A_t x_0 per pixel (unclipped) for t = 0 … T: σ_t · std(z)."""
        return [s * DIST_STD[self.dist] for s in self.sigma()]


def ladder_step(x_prev: torch.Tensor, t: int, schedule: LadderSchedule, z: torch.Tensor) -> torch.Tensor:
    """One rung up with the given unit-scale noise z: clip(a_t x_{t−1} + b_t z). Same shape as x_prev."""
    a, b = schedule.coefficients()
    x = a[t] * x_prev + b[t] * z
    return x.clamp(0.0, 1.0) if schedule.clip else x


def full_ladder(x0: torch.Tensor, schedule: LadderSchedule, generator: torch.Generator | None = None) -> torch.Tensor:
    """Every rung of a batch: x0 (B, C, H, W) in [0, 1] -> (T+1, B, C, H, W), [0] = x0.

    Rung t draws one z of shape x0.shape from ``generator`` (in order t = 1 … T), so
    ``ladder_pair`` with the same generator state walks the same rungs.
    """
    rungs = [x0]
    for t in range(1, schedule.T + 1):
        rungs.append(ladder_step(rungs[-1], t, schedule, draw_noise(x0, schedule.dist, generator)))
    return torch.stack(rungs)  # (T+1, B, C, H, W)


def ladder_pair(x0: torch.Tensor, t: torch.Tensor, schedule: LadderSchedule,
                generator: torch.Generator | None = None, top: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, x_{t−1}) for a batch, each sample at its own rung, drawn on x0's device.

    x0: (B, C, H, W) in [0, 1]; t: (B,) integers in 1 … T. Walks the batch up to
    max(t) and keeps, per sample, the rung t and the one below it, so x_t is exactly
    ``ladder_step(x_{t−1}, t, z_t)``. Returns two (B, C, H, W) tensors. ``top`` (≥ max(t))
    walks further: a rank holding part of a batch passes the whole batch's max(t), so that
    every rank draws the same noise.
    """
    t = t.to(x0.device).long()
    assert bool(((t >= 1) & (t <= schedule.T)).all()), "t must lie in 1 … T"
    pick = lambda s: (t == s).view(-1, *([1] * (x0.dim() - 1)))  # (B, 1, 1, 1)  # noqa: E731
    x, x_t, x_prev = x0, x0, x0
    for s in range(1, (int(t.max()) if top is None else top) + 1):
        x_next = ladder_step(x, s, schedule, draw_noise(x0, schedule.dist, generator))
        x_prev = torch.where(pick(s), x, x_prev)
        x_t = torch.where(pick(s), x_next, x_t)
        x = x_next
    return x_t, x_prev


def materialize(images: torch.Tensor, schedule: LadderSchedule, generator: torch.Generator | None = None,
                chunk: int = 1000) -> torch.Tensor:
    """The notebook's enlarged training set: images (N, C, H, W) in [0, 1] -> (T+1, N, C, H, W) float32.

    Costs ``materialize_bytes(N, T)`` of memory on the images' device; the noise is drawn
    once and reused every epoch, as in the notebook.
    """
    return torch.cat([full_ladder(part, schedule, generator) for part in images.split(chunk)], dim=1)


def materialize_bytes(n: int, T: int, pixels: int = 28 * 28) -> int:
    """Bytes of the float32 (T+1, N, 1, 28, 28) stack that ``materialize`` builds."""
    return (T + 1) * n * pixels * 4


def run_chain(model, x_top, T: int):
    """x̂_T = x_top, then x̂_{t−1} = sigmoid(net(x̂_t, t)) down to t = 1: list of T+1 tensors (B, 1, 28, 28)."""
    import torch

    xs = [x_top]
    for t in range(T, 0, -1):
        x = xs[-1]
        steps = torch.full((len(x),), t, device=x.device, dtype=torch.long)
        xs.append(torch.cat([torch.sigmoid(model(part, s).float())
                             for part, s in zip(x.split(500), steps.split(500))]))
    return xs
