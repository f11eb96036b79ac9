"""DDPM and DDIM: two step rules over the same trained network.

| code name           | paper symbol                                   | where                          |
|---------------------|------------------------------------------------|--------------------------------|
| ``model_fn(x_t, t)``| ε_θ(x_t, t) (or x̂_0, v̂ — see ``prediction``)   | Ho et al. 2020, eq. 11         |
| ``x0_hat``          | x̂_0, clipped to [−1, 1] when ``clip``           | Ho et al. 2020, eq. 15         |
| ``mean``            | μ̃_t(x_t, x̂_0) = √ᾱ_{t−1} β_t/(1−ᾱ_t) x̂_0       | Ho et al. 2020, eq. 7          |
|                     |              + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t     |                                |
| ``var``             | σ_t² = β̃_t ("fixed_small")                     | Ho et al. 2020, eq. 7, sec. 3.2|
| ``ddpm_step``       | x_{t−1} = μ̃_t + σ_t z                          | Ho et al. 2020, Alg. 2         |
| ``sigma``           | σ_t(η) = η √((1−ᾱ_{t−1})/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_{t−1}) | Song et al. 2021, eq. 16  |
| ``ddim_step``       | x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1−ᾱ_{t−1}−σ_t²) ε̂ + σ_t z | Song et al. 2021, eq. 12 |
| ``ddim_timesteps``  | the sub-sequence τ of [0, T)                   | Song et al. 2021, sec. 4.2     |
| ``guided``          | ε̃ = (1+w) ε(x, t, y) − w ε(x, t, ∅)            | Ho & Salimans 2022, eq. 6      |

In DDIM, "t−1" means the previous element of the sub-sequence (``t_prev``),
and ᾱ at t_prev < 0 is 1 (the clean image), as in diffusers' ``set_alpha_to_one``.

Both step rules follow diffusers' ``DDPMScheduler`` / ``DDIMScheduler`` defaults
(clip x̂_0 to [−1, 1]; "fixed_small" variance; in DDIM the direction term uses
the network's ε̂, not one recomputed from the clipped x̂_0), and the tests check
them against those schedulers.  Randomness enters only through ``noise``
tensors (step functions) or an explicit ``torch.Generator`` (sampling loops).
"""

from __future__ import annotations

from typing import Callable

import torch

from connlab.diffusion.schedule import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddpm_step(
    schedule: NoiseSchedule,
    model_out: torch.Tensor,
    t: int,
    x_t: torch.Tensor,
    noise: torch.Tensor | None,
    prediction: str = "eps",
    clip: bool = True,
) -> torch.Tensor:
    """One ancestral step x_t → x_{t−1} (Ho et al. 2020, Algorithm 2 via eq. 7).

    model_out, x_t, noise: (B, C, H, W); ``noise`` may be None only at t = 0,
    where no noise is added.  Returns x_{t−1}, (B, C, H, W).
    """
    if not 0 <= t < schedule.T:
        raise ValueError(f"t must be in [0, {schedule.T}), got {t}")
    x0_hat = schedule.predict_x0(x_t, t, model_out, prediction)
    if clip:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    mean = schedule.posterior_mean_coef1[t] * x0_hat + schedule.posterior_mean_coef2[t] * x_t
    if t == 0:
        return mean  # β̃_0 = 0: the last step is the posterior mean
    if noise is None:
        raise ValueError(f"ddpm_step needs a noise tensor at t = {t} > 0")
    return mean + schedule.posterior_variance[t].sqrt() * noise


def ddim_step(
    schedule: NoiseSchedule,
    model_out: torch.Tensor,
    t: int,
    t_prev: int,
    x_t: torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    prediction: str = "eps",
    clip: bool = True,
) -> torch.Tensor:
    """One DDIM step x_t → x_{t_prev} (Song et al. 2021, eq. 12 with σ_t(η), eq. 16).

    η = 0 is the deterministic DDIM; η = 1 matches DDPM's posterior variance on
    the sub-sequence.  ``t_prev < 0`` means "to the clean image" (ᾱ = 1).
    model_out, x_t, noise: (B, C, H, W); ``noise`` is needed only when η > 0.
    Returns (B, C, H, W).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if not 0 <= t < schedule.T or t_prev >= t:
        raise ValueError(f"need 0 <= t < {schedule.T} and t_prev < t, got t={t}, t_prev={t_prev}")
    x0_hat = schedule.predict_x0(x_t, t, model_out, prediction)
    eps_hat = schedule.predict_eps(x_t, t, model_out, prediction)
    if clip:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    # Scalars in float64: 1 − ᾱ_t/ᾱ_{t_prev} cancels in float32 when the steps are close.
    ab = schedule.alpha_bar_f64[t]
    ab_prev = schedule.alpha_bar_f64[t_prev] if t_prev >= 0 else torch.ones_like(ab)  # no host copy: graph-safe
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
    dir_coef = (1 - ab_prev - sigma**2).sqrt()
    x_prev = ab_prev.sqrt().to(x_t.dtype) * x0_hat + dir_coef.to(x_t.dtype) * eps_hat
    if eta > 0:
        if noise is None:
            raise ValueError(f"ddim_step needs a noise tensor when eta = {eta} > 0")
        x_prev = x_prev + sigma.to(x_t.dtype) * noise
    return x_prev


def ddim_timesteps(T: int, K: int) -> torch.Tensor:
    """The K DDIM time steps, largest first: ``arange(K) * (T // K)``, reversed.

    This is diffusers' default "leading" spacing with ``steps_offset = 0``:
    for T = 1000, K = 50 it gives 980, 960, …, 20, 0.  The first step therefore
    starts at t = T − T//K rather than T − 1 (the "trailing" spacing of Lin et
    al. 2024 fixes that; we keep the common default so results compare).
    Returns a (K,) long tensor.
    """
    if not 1 <= K <= T:
        raise ValueError(f"steps must be in [1, {T}] (T = {T}), got {K}")
    return (torch.arange(K, dtype=torch.long) * (T // K)).flip(0)


def _start(
    shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str | None, x_T: torch.Tensor | None
) -> torch.Tensor:
    if x_T is not None:
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
        return x_T
    device = generator.device if device is None else torch.device(device)
    return torch.randn(shape, generator=generator, device=device)


@torch.no_grad()
def sample_ddpm(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    generator: torch.Generator,
    prediction: str = "eps",
    clip: bool = True,
    device: torch.device | str | None = None,
    return_trajectory: bool = False,
    x_T: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ancestral sampling from x_T ~ N(0, I) through all T steps.

    ``model_fn(x_t, t)`` gets x_t (B, C, H, W) and t, a (B,) long tensor filled
    with the current step.  Noise is drawn from ``generator`` on its device
    (or ``device``); pass ``x_T`` to start from a given noise instead of a
    fresh draw.  Returns x_0 (B, C, H, W) — or, with
    ``return_trajectory``, every state stacked, (T + 1, B, C, H, W), from x_T
    at index 0 to x_0 at index −1.
    """
    x = _start(shape, generator, device, x_T)
    trajectory = [x] if return_trajectory else None
    for t in range(schedule.T - 1, -1, -1):
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=x.device)
        noise = torch.randn(shape, generator=generator, device=x.device) if t > 0 else None
        x = ddpm_step(schedule, model_fn(x, t_batch), t, x, noise, prediction, clip)
        if trajectory is not None:
            trajectory.append(x)
    return torch.stack(trajectory) if trajectory is not None else x


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    steps: int,
    eta: float,
    generator: torch.Generator,
    prediction: str = "eps",
    clip: bool = True,
    device: torch.device | str | None = None,
    return_trajectory: bool = False,
    x_T: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM sampling over ``ddim_timesteps(T, steps)`` (Song et al. 2021).

    With η = 0 the only randomness is x_T, so the map x_T → x_0 is
    deterministic.  ``model_fn`` and ``x_T`` as in ``sample_ddpm``.  Returns x_0
    (B, C, H, W) — or, with ``return_trajectory``, (steps + 1, B, C, H, W)
    from x_T to x_0.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    timesteps = ddim_timesteps(schedule.T, steps).tolist()
    x = _start(shape, generator, device, x_T)
    trajectory = [x] if return_trajectory else None
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=x.device)
        noise = torch.randn(shape, generator=generator, device=x.device) if eta > 0 else None
        x = ddim_step(schedule, model_fn(x, t_batch), t, t_prev, x, eta, noise, prediction, clip)
        if trajectory is not None:
            trajectory.append(x)
    return torch.stack(trajectory) if trajectory is not None else x


def guided(model: Callable[..., torch.Tensor], y: torch.Tensor, w: float) -> ModelFn:
    """Classifier-free guidance as a ``model_fn``: (1 + w)·ε(x, t, y) − w·ε(x, t, ∅).

    Convention of Ho & Salimans 2022 (eq. 6): ``w = 0`` is the plain conditional
    model, ``w > 0`` pushes away from the unconditional prediction.  diffusers'
    ``guidance_scale`` is s = 1 + w (ε_∅ + s·(ε_y − ε_∅)).  ``model(x, t, y)``
    must treat ``y=None`` as the null label ∅ (``DiffusionUNet`` does).
    y: (B,) long.
    """

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (1 + w) * model(x, t, y) - w * model(x, t, None)

    return model_fn


@torch.no_grad()
def ddim_x0_path(model_fn: ModelFn, schedule, x_T: torch.Tensor, steps: int, *, prediction: str = "eps",
                 clip: bool = True) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from ``x_T``, returning the network's x̂₀ at every step.

    The same step rule as ``sample_ddim`` (which returns the states x_t, not x̂₀). Returns
    (steps, B, C, H, W) in the sampler's space ([−1, 1] for pixels); the last entry is the final
    sample (at t_prev = −1 DDIM returns x̂₀ itself).
    """
    timesteps = ddim_timesteps(schedule.T, steps).tolist()
    x, path = x_T, []
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        out = model_fn(x, torch.full((len(x),), t, dtype=torch.long, device=x.device))
        x0 = schedule.predict_x0(x, t, out, prediction)
        path.append(x0.clamp(-1, 1) if clip else x0)
        x = ddim_step(schedule, out, t, t_prev, x, 0.0, None, prediction, clip)
    return torch.stack(path)
