"""Noise schedules and the closed-form forward process of DDPM.

| code name                  | paper symbol                         | where                                   |
|----------------------------|--------------------------------------|-----------------------------------------|
| ``T``                      | T                                    | Ho et al. 2020, sec. 2                  |
| ``betas[t]``               | β_t                                  | Ho et al. 2020, eq. 2                   |
| ``alphas[t]``              | α_t = 1 − β_t                        | Ho et al. 2020, eq. 4                   |
| ``alpha_bar[t]``           | ᾱ_t = ∏_{s≤t} α_s                    | Ho et al. 2020, eq. 4                   |
| ``alpha_bar_prev[t]``      | ᾱ_{t−1} (ᾱ_{−1} := 1)                | Ho et al. 2020, eq. 7                   |
| ``posterior_variance[t]``  | β̃_t = (1−ᾱ_{t−1}) / (1−ᾱ_t) · β_t    | Ho et al. 2020, eq. 7                   |
| ``posterior_mean_coef1/2`` | μ̃_t = coef1 · x_0 + coef2 · x_t      | Ho et al. 2020, eq. 7                   |
| ``q_sample(x0, t, eps)``   | x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε          | Ho et al. 2020, eqs. 4 and 14           |
| ``predict_x0`` (from ε)    | x̂_0 = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t       | Ho et al. 2020, eq. 15 (inverse of 4)   |
| ``predict_eps``            | ε̂ from an x̂_0 or v̂ prediction        | inverse of eq. 4                        |
| ``v_target``               | v = √ᾱ_t ε − √(1−ᾱ_t) x_0            | Salimans & Ho 2022, sec. 4              |
| ``diffusion_loss``         | ‖target − model_out‖² (L_simple)     | Ho et al. 2020, eqs. 12 and 14          |
| ``NoiseSchedule.linear``   | β_t linear from 1e-4 to 0.02         | Ho et al. 2020, sec. 4                  |
| ``NoiseSchedule.cosine``   | ᾱ_t ∝ cos²((t/T + s)/(1 + s) · π/2)  | Nichol & Dhariwal 2021, eq. 17          |

Time steps are 0-based as in diffusers: ``t = 0`` is the first noising step
(the paper's t = 1) and ``t = T − 1`` the last.  A ``prediction`` names what
the network outputs: ``"eps"`` (ε, Ho et al.), ``"x0"`` (x_0) or ``"v"``
(Salimans & Ho).  The network never sees this module: it gets (x_t, t) and
returns a tensor; the schedule turns that tensor into x̂_0 and ε̂.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PREDICTIONS = ("eps", "x0", "v")


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def _at(a: torch.Tensor, t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gather ``a[t]`` and shape it to broadcast over ``x`` (B, ...).

    ``t`` is an int (one step for the whole batch) or a (B,) integer tensor.
    """
    if isinstance(t, int):
        return a[t].to(x.dtype)
    t = t.to(a.device).long()
    return a[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))  # (B, 1, 1, 1)


class NoiseSchedule:
    """The β schedule of a T-step diffusion and the quantities derived from it.

    Holds float32 tensors of shape (T,): ``betas``, ``alphas``, ``alpha_bar``,
    ``alpha_bar_prev``, ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar``,
    ``posterior_variance`` and ``posterior_mean_coef1/2``, plus ``alpha_bar_f64``.

    Every derived quantity is computed in float64 and then cast.  This matters:
    near t = 0, ᾱ_t ≈ 1 − 1e-4, and 1 − ᾱ_t formed in float32 keeps only three
    or four digits (catastrophic cancellation), which moves a DDPM step by ~1e-4.
    ``alpha_bar_f64`` serves step rules (DDIM) that need 1 − ᾱ_t / ᾱ_s for
    arbitrary s < t.
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"betas must lie in (0, 1), got min {betas.min().item()}, max {betas.max().item()}")
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        f32 = lambda a: a.to(torch.float32)  # noqa: E731
        self.T = len(betas)
        self.betas = f32(betas)
        self.alphas = f32(alphas)
        self.alpha_bar = f32(alpha_bar)
        self.alpha_bar_prev = f32(alpha_bar_prev)
        self.sqrt_alpha_bar = f32(alpha_bar.sqrt())
        self.sqrt_one_minus_alpha_bar = f32((1.0 - alpha_bar).sqrt())
        self.posterior_variance = f32((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas)
        self.posterior_mean_coef1 = f32(alpha_bar_prev.sqrt() * betas / (1.0 - alpha_bar))
        self.posterior_mean_coef2 = f32(alphas.sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar))
        self.alpha_bar_f64 = alpha_bar

    # --- constructors -----------------------------------------------------------------

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """Ho et al. 2020: β linear in t (diffusers' ``beta_schedule="linear"``)."""
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        # linspace in float32, exactly as diffusers does, so the betas match bit for bit.
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float32))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Nichol & Dhariwal 2021, eq. 17 (diffusers' ``"squaredcos_cap_v2"``).

        β_t = 1 − ᾱ(t+1)/ᾱ(t) with ᾱ(u) = cos²((u/T + s)/(1 + s) · π/2), capped at
        ``max_beta`` because β → 1 near u = T would make the last step singular.
        """
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")

        def f(u: float) -> float:
            return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

        betas = [min(1.0 - f(i + 1) / f(i), max_beta) for i in range(T)]
        return cls(torch.tensor(betas, dtype=torch.float32))

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """Move every tensor to ``device`` (in place); returns self, like ``nn.Module.to``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    @property
    def device(self) -> torch.device:
        return self.betas.device

    # --- forward process and conversions ---------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε  (eq. 4): jump straight from x_0 to step t.

        x0, eps: (B, C, H, W); t: int or (B,) long. Returns (B, C, H, W).
        """
        return _at(self.sqrt_alpha_bar, t, x0) * x0 + _at(self.sqrt_one_minus_alpha_bar, t, x0) * eps

    def v_target(self, x0: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022); (B, C, H, W)."""
        return _at(self.sqrt_alpha_bar, t, x0) * eps - _at(self.sqrt_one_minus_alpha_bar, t, x0) * x0

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor, prediction: str = "eps") -> torch.Tensor:
        """What a network trained with ``prediction`` should output at (x_t, t)."""
        _check_prediction(prediction)
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        return self.v_target(x0, eps, t)

    def predict_x0(self, x_t: torch.Tensor, t: int | torch.Tensor, model_out: torch.Tensor, prediction: str = "eps") -> torch.Tensor:
        """x̂_0 from the network output; all tensors (B, C, H, W)."""
        _check_prediction(prediction)
        a, b = _at(self.sqrt_alpha_bar, t, x_t), _at(self.sqrt_one_minus_alpha_bar, t, x_t)
        if prediction == "eps":
            return (x_t - b * model_out) / a
        if prediction == "x0":
            return model_out
        return a * x_t - b * model_out  # x_0 = √ᾱ x_t − √(1−ᾱ) v

    def predict_eps(self, x_t: torch.Tensor, t: int | torch.Tensor, model_out: torch.Tensor, prediction: str = "eps") -> torch.Tensor:
        """ε̂ from the network output; all tensors (B, C, H, W)."""
        _check_prediction(prediction)
        a, b = _at(self.sqrt_alpha_bar, t, x_t), _at(self.sqrt_one_minus_alpha_bar, t, x_t)
        if prediction == "eps":
            return model_out
        if prediction == "x0":
            return (x_t - a * model_out) / b
        return a * model_out + b * x_t  # ε = √ᾱ v + √(1−ᾱ) x_t


def diffusion_loss(
    model_out: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: int | torch.Tensor,
    schedule: NoiseSchedule,
    prediction: str = "eps",
) -> torch.Tensor:
    """Mean squared error against the target named by ``prediction``.

    With ``"eps"`` this is Ho et al.'s L_simple (eq. 14); the per-t weights of the
    variational bound (eq. 12) are dropped, which they found gives better samples.
    Returns a scalar.
    """
    return F.mse_loss(model_out, schedule.target(x0, eps, t, prediction))
