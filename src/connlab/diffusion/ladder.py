"""The ladders of Exercise 2: incremental denoising with T steps.

| code name          | symbol            | meaning                                                    |
|--------------------|-------------------|------------------------------------------------------------|
| ``T``              | T (``steps2use``) | rungs above the clean image; x_0 is clean, x_T the noisiest |
| ``mag``            | ``mag2use``       | noise magnitude                                            |
| ``dist``           | ``dist2try``      | ``norm``: z ~ N(0, 1); ``uniform``: z ~ U(−1, 1) (course: ``'uni'``) |
| ``x_T``            | x_T               | ``interpolate``: the one end point, clip(x_0 + round(mag · z), 0, 1) |
| ``a[t]``, ``b[t]`` | a_t, b_t          | a walk's rung: x_t = clip(a_t · x_{t−1} + b_t · z_t), t = 1 … T  |
| ``gain[t]``        | A_t = ∏_{s≤t} a_s | what is left of x_0 in x_t (before clipping)               |
| ``sigma[t]``       | σ_t               | std of x_t − A_t x_0 in units of z: σ_t² = a_t² σ_{t−1}² + b_t² |

The course's ladder: ``interpolate`` (the default)
----------------------------------------------------
The course's diffusion notebook (``C24_MNIST_AE_diffusion_v3.ipynb``: ``steps2use = 10``,
``dist2try = 'norm'``, ``mag2use = 1``, ``newN = X_train.shape[0]*(steps2use+1)``) draws, for
every training digit x_0, **one** noisy end point

    x_T = clip(x_0 + round(mag · z), 0, 1),   z ~ N(0, 1)   ('uni': round(U(−mag, mag)))

(``connlab.data.noise.rounded_endpoint``: with mag 1 a pixel is kept, forced to 0 or forced to 1),
and puts the T rungs **on the straight line** between them:

    x_i = x_0 + (i / T) · (x_T − x_0),   i = 0 … T          (``interpolation_ladder``)

Its training set is the N·(T+1) pairs x_i → x_{i−1} for i = 1 … T plus x_0 → x_0 ("nothing to
denoise"), digit by digit (``interpolation_pairs``). The Exercise-1 U-Net (both skips) learns one
step back along the line with BCE; to denoise, it is applied again and again. There is no fresh
noise anywhere after the end point: every rung is a blend of the same two images, so "one step"
means "move 1/T of the way from the noise pattern back towards the digit".

The lab's random walks: ``walk``, ``ve``, ``vp``
------------------------------------------------
connlab's earlier reading of the slides (before the course's notebook was read): each rung adds
an independent draw of noise to the rung below and clips to [0, 1] *at every step*::

    x_t = clip(a_t · x_{t−1} + b_t · z_t, 0, 1),   z_t iid ``dist``, unit scale

with σ_t the noise std at rung t *without* clipping, for ``norm`` (multiply by 1/√3 for ``uniform``):

- ``walk`` (run folders written before the course's process was added call it ``notebook``):
  a_t = 1, b_t = mag / T — T equal increments whose scales add up to mag; their *variances* add,
  σ_t = mag · √t / T, so the top rung carries std mag / √T (0.32 for T = 10, mag = 1), not mag.
- ``ve`` (variance exploding, a random walk whose total std reaches mag):
  a_t = 1, b_t = mag / √T, σ_t = mag · √(t/T); σ_T = mag.
- ``vp`` (variance preserving, Ho et al. 2020 eq. 2 with the cosine ᾱ of Nichol &
  Dhariwal 2021): a_t = √(1 − β_t), b_t = mag · √β_t, so x_t = √ᾱ_t x_0 + mag · √(1 − ᾱ_t) ε
  (A_t = √ᾱ_t, σ_t = mag · √(1 − ᾱ_t)); at t = T, ᾱ ≈ 0: x_T is (clipped) pure noise.

Clipping makes the clipped rungs' noise smaller than σ_t near 0 and 1 (and "vp" no longer
exactly variance preserving); ``clip=False`` gives the textbook process, used by the tests.

On the fly, or N × (T+1) stored copies
---------------------------------------
``ladder_pair`` draws (x_t, x_{t−1}) for a batch with a per-sample t on the device: for
``interpolate`` a fresh end point per sample and t uniform in 0 … T (the x_0 → x_0 pair is t = 0);
for a walk t in 1 … T, walking the batch up the ladder (T cheap element-wise steps next to one
U-Net pass). Every epoch sees fresh noise. ``materialize`` stores, like the notebook, the whole
(T+1, N, 1, 28, 28) float32 stack of one fixed draw — (T+1)·N·784·4 bytes (``materialize_bytes``):
34.5 MB for the course's 1,000 digits at T = 10, 310 MB for the 9,000 embedded digits, 2.07 GB
for full MNIST.

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

Measured behaviour of the chains (PSNR along them, what pure random input turns into) is in
``docs/`` and ``benchmarks/RESULTS.md``, where it does not go stale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from connlab.data.noise import NOISE_DISTS, draw_noise, rounded_endpoint
from connlab.diffusion.schedule import NoiseSchedule

SCHEDULES = ("interpolate", "walk", "ve", "vp")
WALKS = ("walk", "ve", "vp")
LEGACY_NAMES = {"notebook": "walk"}   # the name run folders written before the course's process carry
DIST_STD = {"norm": 1.0, "uniform": 1.0 / math.sqrt(3.0)}  # std of the unit-scale draw z


def schedule_name(name: str) -> str:
    """Today's name of a ladder schedule (``notebook``, in old run folders, is ``walk``)."""
    return LEGACY_NAMES.get(name, name)


@dataclass(frozen=True)
class LadderSchedule:
    """A T-rung ladder: ``interpolate`` (the course's straight line to one end point) or a walk
    x_t = clip(a_t x_{t−1} + b_t z_t) for t = 1 … T."""

    name: str = "interpolate"
    T: int = 10
    mag: float = 1.0
    dist: str = "norm"
    clip: bool = True

    def __post_init__(self):
        object.__setattr__(self, "name", schedule_name(self.name))
        if self.name not in SCHEDULES:
            raise ValueError(f"ladder schedule {self.name!r} is not one of {', '.join(SCHEDULES)}")
        if not (isinstance(self.T, int) and self.T >= 1):
            raise ValueError(f"--steps must be an integer >= 1, got {self.T}")
        if not (self.mag >= 0 and math.isfinite(self.mag)):
            raise ValueError(f"--mag must be a finite number >= 0, got {self.mag}")
        if self.dist not in NOISE_DISTS:
            raise ValueError(f"noise distribution {self.dist!r} is not one of {', '.join(NOISE_DISTS)}")

    @property
    def interpolates(self) -> bool:
        return self.name == "interpolate"

    @property
    def first_pair(self) -> int:
        """The lowest t of a training pair: 0 for ``interpolate`` (the x_0 → x_0 pair), 1 for a walk."""
        return 0 if self.interpolates else 1

    def coefficients(self) -> tuple[list[float], list[float]]:
        """A walk's (a, b), each of length T+1; index t is rung t (index 0 unused: a=1, b=0)."""
        T, mag = self.T, self.mag
        if self.name == "interpolate":
            raise ValueError("the interpolate ladder adds no noise per rung: its rungs lie on the line to x_T")
        if self.name == "walk":
            a, b = [1.0] * T, [mag / T] * T
        elif self.name == "ve":
            a, b = [1.0] * T, [mag / math.sqrt(T)] * T
        else:  # vp: reuse the DDPM cosine β_t so the ladder and DDPM share one schedule

            betas = NoiseSchedule.cosine(T).betas.double().tolist()
            a, b = [math.sqrt(1.0 - beta) for beta in betas], [mag * math.sqrt(beta) for beta in betas]
        return [1.0] + a, [0.0] + b

    def gain(self) -> list[float]:
        """A_t for t = 0 … T: ∏_{s≤t} a_s for a walk; for ``interpolate`` 1 − t/T (x_0's weight on the line)."""
        if self.interpolates:
            return [1.0 - t / self.T for t in range(self.T + 1)]
        a, _ = self.coefficients()
        return [math.prod(a[1:t + 1]) for t in range(self.T + 1)]

    def sigma(self) -> list[float]:
        """σ_t for t = 0 … T, in units of z (unclipped): σ_t² = a_t² σ_{t−1}² + b_t² (a walk)."""
        a, b = self.coefficients()
        var = [0.0]
        for t in range(1, self.T + 1):
            var.append(a[t] ** 2 * var[-1] + b[t] ** 2)
        return [math.sqrt(v) for v in var]

    def noise_std(self) -> list[float]:
        """A walk's std of x_t − A_t x_0 per pixel (unclipped) for t = 0 … T: σ_t · std(z)."""
        return [s * DIST_STD[self.dist] for s in self.sigma()]

    def describe(self) -> str:
        """One line for summaries and pages: how x_T is made and how the rungs get there."""
        z = "N(0, 1)" if self.dist == "norm" else "U(−1, 1)"
        if self.interpolates:
            return (f"one end point per digit, x_T = clip(x_0 + round({self.mag:g}·z), 0, 1), z ~ {z}; "
                    f"rungs x_i = x_0 + (i/{self.T})(x_T − x_0)")
        return f"{self.name} walk: x_t = clip(a_t x_(t−1) + b_t z_t), z ~ {z}, mag {self.mag:g}, T = {self.T}"


# --- the course's process: one end point, rungs on the line ------------------------------------------

def interpolation_ladder(x0: torch.Tensor, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    """The course's rungs: x0, x_T (B, C, H, W) -> (T+1, B, C, H, W) with [i] = x0 + (i/T)(x_T − x0).

    [0] is x0 and [T] is x_T exactly (the weights are i/T and 1 − i/T); the rungs between are
    blends of the two images, so they stay in [0, 1] when x0 and x_T do.
    """
    w = torch.arange(steps + 1, device=x0.device, dtype=x0.dtype) / steps   # i / T
    w = w.view(-1, *([1] * x0.dim()))                                      # (T+1, 1, 1, 1, 1)
    return (1 - w) * x0.unsqueeze(0) + w * x_T.unsqueeze(0)               # (T+1, B, C, H, W)


def course_endpoint(x0: torch.Tensor, schedule: LadderSchedule, generator: torch.Generator | None = None):
    """x_T = clip(x0 + round(mag · z), 0, 1) for every image of x0 (B, C, H, W), one draw each."""
    return rounded_endpoint(x0, schedule.mag, schedule.dist, generator)


def pairs_from_rungs(rungs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The N·(T+1) training pairs of a stored ladder (T+1, N, C, H, W), in the notebook's order.

    Returns (inputs, targets), each (N·(T+1), C, H, W): digit by digit, first x_0 → x_0 ("nothing to
    denoise"), then x_i → x_{i−1} for i = 1 … T, so row b·(T+1) + i holds rung i of digit b.
    """
    T1, n = rungs.shape[:2]
    below = torch.cat([rungs[:1], rungs[:-1]])                       # rung max(i − 1, 0)
    flat = lambda r: r.transpose(0, 1).reshape(n * T1, *rungs.shape[2:])  # (N·(T+1), C, H, W)  # noqa: E731
    return flat(rungs), flat(below)


def interpolation_pairs(x0: torch.Tensor, steps: int, mag: float = 1.0, dist: str = "norm",
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's training set from clean images x0 (N, C, H, W) in [0, 1]: (inputs, targets), each
    (N·(T+1), C, H, W) (``newN = N·(steps2use+1)``), one end point drawn per image (``pairs_from_rungs``)."""
    schedule = LadderSchedule("interpolate", steps, mag, dist)
    return pairs_from_rungs(interpolation_ladder(x0, course_endpoint(x0, schedule, generator), steps))


def pair_count(n: int, T: int) -> int:
    """Training pairs of N stored ladders: N·(T+1) (the course's ``newN``)."""
    return n * (T + 1)


# --- both kinds ----------------------------------------------------------------------------------------

def ladder_step(x_prev: torch.Tensor, t: int, schedule: LadderSchedule, z: torch.Tensor) -> torch.Tensor:
    """One rung of a walk up with the given unit-scale noise z: clip(a_t x_{t−1} + b_t z). Same shape as x_prev."""
    a, b = schedule.coefficients()
    x = a[t] * x_prev + b[t] * z
    return x.clamp(0.0, 1.0) if schedule.clip else x


def full_ladder(x0: torch.Tensor, schedule: LadderSchedule, generator: torch.Generator | None = None) -> torch.Tensor:
    """Every rung of a batch: x0 (B, C, H, W) in [0, 1] -> (T+1, B, C, H, W), [0] = x0.

    ``interpolate``: one end point per image, then the line. A walk: rung t draws one z of shape
    x0.shape from ``generator`` (in order t = 1 … T), so ``ladder_pair`` with the same generator
    state walks the same rungs.
    """
    if schedule.interpolates:
        return interpolation_ladder(x0, course_endpoint(x0, schedule, generator), schedule.T)
    rungs = [x0]
    for t in range(1, schedule.T + 1):
        rungs.append(ladder_step(rungs[-1], t, schedule, draw_noise(x0, schedule.dist, generator)))
    return torch.stack(rungs)  # (T+1, B, C, H, W)


def ladder_pair(x0: torch.Tensor, t: torch.Tensor, schedule: LadderSchedule,
                generator: torch.Generator | None = None, top: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, x_{t−1}) for a batch, each sample at its own rung, drawn on x0's device.

    x0: (B, C, H, W) in [0, 1]; t: (B,) integers in ``first_pair`` … T. ``interpolate``: a fresh end
    point per sample and the two rungs on its line (t = 0 gives the pair (x_0, x_0)). A walk: walks
    the batch up to max(t) and keeps, per sample, the rung t and the one below it, so x_t is exactly
    ``ladder_step(x_{t−1}, t, z_t)``; ``top`` (≥ max(t)) walks further: a rank holding part of a batch
    passes the whole batch's max(t), so that every rank draws the same noise. Two (B, C, H, W) tensors.
    """
    t = t.to(x0.device).long()
    assert bool(((t >= schedule.first_pair) & (t <= schedule.T)).all()), "t must lie in first_pair … T"
    shape = (-1, *([1] * (x0.dim() - 1)))
    if schedule.interpolates:
        x_T = course_endpoint(x0, schedule, generator)
        w = (t.to(x0.dtype) / schedule.T).view(shape)                      # (B, 1, 1, 1)
        w_prev = ((t - 1).clamp(min=0).to(x0.dtype) / schedule.T).view(shape)
        return x0 + w * (x_T - x0), x0 + w_prev * (x_T - x0)
    pick = lambda s: (t == s).view(shape)  # (B, 1, 1, 1)  # noqa: E731
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
    xs = [x_top]
    for t in range(T, 0, -1):
        xs.append(denoise_step(model, xs[-1], t))
    return xs


def feed_back(model, x_rung: torch.Tensor, rung: int, passes: int) -> list[torch.Tensor]:
    """The course's closing cells: a test digit at rung ``rung`` through the network, then its output fed
    back again and again — ``passes`` outputs in all (the course: rung 7, one pass, then 15 more).

    Returns [x_rung, out_1, …, out_passes], each (B, 1, 28, 28). A network that is told t gets t = rung,
    rung − 1, … for its passes and t = 0 (the x_0 → x_0 pair) once the chain is past x_0.
    """
    xs = [x_rung]
    for k in range(passes):
        xs.append(denoise_step(model, xs[-1], max(rung - k, 0)))
    return xs


def denoise_step(model, x: torch.Tensor, t: int) -> torch.Tensor:
    """sigmoid(net(x, t)) for a batch x (B, 1, 28, 28), in chunks of 500: one rung down."""
    steps = torch.full((len(x),), t, device=x.device, dtype=torch.long)
    return torch.cat([torch.sigmoid(model(part, s).float()) for part, s in zip(x.split(500), steps.split(500))])
