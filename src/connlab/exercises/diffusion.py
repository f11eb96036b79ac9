"""Checks for notebook 03: the forward process q(x_t | x_0) and one deterministic DDIM step.

References are the lab's ``NoiseSchedule.q_sample`` (Ho et al. 2020, eq. 4) and ``ddim_step``
with η = 0 and no clipping (Song et al. 2021, eq. 12), on the cosine schedule with T = 1000::

    x_t     = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε
    x̂_0     = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t
    x_{t−1} = √ᾱ_{t−1} · x̂_0 + √(1 − ᾱ_{t−1}) · ε̂        (t−1: the previous DDIM step; ᾱ = 1 past the end)
"""

from __future__ import annotations

import torch

from connlab.diffusion import NoiseSchedule, ddim_step
from connlab.exercises.common import fail, passed, run_piece

STEPS = (0, 100, 500, 999)  # one image per step: the batch holds four different t


def _schedule() -> NoiseSchedule:
    return NoiseSchedule.cosine(1000)


def _coef(x_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per image, the least-squares c in x_t ≈ c · x: (B,)."""
    return (x_t * x).flatten(1).sum(1) / (x * x).flatten(1).sum(1)


def check_q_sample(q_sample) -> dict:
    """``q_sample(x0, t, eps, alpha_bar)`` -> x_t; x0, eps (B, 1, 28, 28), t (B,) long, alpha_bar (T,)."""
    s = _schedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(len(STEPS), 1, 28, 28, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor(STEPS)
    x_t = run_piece("q_sample", q_sample, x0, t, eps, s.alpha_bar.clone(),
                    hint="index alpha_bar with t and reshape to (B, 1, 1, 1): alpha_bar[t].view(-1, 1, 1, 1)")
    if not isinstance(x_t, torch.Tensor) or x_t.shape != x0.shape:
        fail(f"q_sample should return x_t shaped like x0 {tuple(x0.shape)}, got "
             f"{tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__} — index alpha_bar "
             "with t and reshape to (B, 1, 1, 1) so each image gets its own step")
    want = s.q_sample(x0, t, eps)
    if torch.allclose(x_t, want, atol=1e-5):
        passed(f"q(x_t | x_0) matches the lab's closed form at t = {', '.join(map(str, STEPS))} "
               f"(√ᾱ_t = {', '.join(f'{v:.3f}' for v in s.sqrt_alpha_bar[t].tolist())})")
        return {"max_abs_difference": (x_t - want).abs().max().item()}
    ab = s.alpha_bar[t]
    got_x0 = _coef(run_piece("q_sample", q_sample, x0, t, torch.zeros_like(eps), s.alpha_bar.clone()), x0)
    got_eps = _coef(run_piece("q_sample", q_sample, torch.zeros_like(x0), t, eps, s.alpha_bar.clone()), eps)
    ab_prev = torch.where(t > 0, s.alpha_bar[(t - 1).clamp(min=0)], torch.ones_like(ab))
    alpha = ab / ab_prev                                                  # one step's α_t = ᾱ_t / ᾱ_{t−1}
    for i, step in enumerate(STEPS):
        a, b = ab[i].sqrt().item(), (1 - ab[i]).sqrt().item()
        if abs(got_x0[i] - a) > 1e-4:
            if step > 0 and abs(got_x0[i] - alpha[i].sqrt()) < 1e-4:
                fail(f"at t = {step} you used α_t, one step's 1 − β_t = {alpha[i].item():.4f}, for ᾱ_t = "
                     f"{ab[i].item():.4f}: q(x_t | x_0) jumps from x_0 with the product ᾱ_t = ∏ α_s, alpha_bar[t]")
            why = (" — that is ᾱ_t: take its square root" if abs(got_x0[i] - ab[i]) < 1e-4 else
                   " — index alpha_bar with each image's own t" if abs(got_x0[i] - ab.mean().sqrt()) < 1e-3 else "")
            fail(f"with ε = 0, x_t should be √ᾱ_t·x_0 = {a:.4f}·x_0 at t = {step}, got {got_x0[i]:.4f}·x_0{why}")
        if abs(got_eps[i] + b) < 1e-4:
            fail("a sign error: the noise is added, x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε, not subtracted")
        if abs(got_eps[i] - b) > 1e-4:
            why = (" — that is 1 − ᾱ_t: take its square root" if abs(got_eps[i] - (1 - ab[i])) < 1e-4 else
                   " — that is √ᾱ_t: the noise gets √(1 − ᾱ_t)" if abs(got_eps[i] - a) < 1e-4 else "")
            fail(f"x_t − √ᾱ_t·x_0 should have std √(1 − ᾱ_t) = {b:.4f} at t = {step}, got {got_eps[i]:.4f}{why}")
    fail(f"x_t differs from √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε by up to {(x_t - want).abs().max().item():.2g}")


def check_ddim_step(ddim) -> dict:
    """``ddim(x_t, eps_hat, alpha_bar_t, alpha_bar_prev)`` -> x_{t−1}; η = 0, ᾱ's as Python floats."""
    s = _schedule()
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)
    for t, t_prev in ((500, 480), (980, 960), (20, -1)):
        ab, ab_prev = s.alpha_bar_f64[t].item(), (s.alpha_bar_f64[t_prev].item() if t_prev >= 0 else 1.0)
        got = run_piece(f"the DDIM step at t = {t}", ddim, x_t, eps, ab, ab_prev)
        want = ddim_step(s, eps, t, t_prev, x_t, eta=0.0, prediction="eps", clip=False)
        if not isinstance(got, torch.Tensor) or got.shape != x_t.shape:
            fail(f"the DDIM step should return x_{{t−1}} shaped like x_t {tuple(x_t.shape)}, got "
                 f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
        if torch.allclose(got, want, atol=1e-5):
            continue
        x0_hat = (x_t - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        alpha = ab / ab_prev                       # one step's α_t (between the two DDIM steps)
        beta = 1 - alpha
        mistakes = (
            ((x_t - beta / (1 - ab) ** 0.5 * eps) / alpha ** 0.5,
             "that is DDPM's update, the mean of p(x_{t−1} | x_t); DDIM first estimates x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) "
             "/ √ᾱ_t, then re-noises it along the same ε̂: x_{t−1} = √ᾱ_{t−1}·x̂_0 + √(1 − ᾱ_{t−1})·ε̂"),
            (ab_prev ** 0.5 * (x_t + (1 - ab) ** 0.5 * eps) / ab ** 0.5 + (1 - ab_prev) ** 0.5 * eps,
             "a sign error in x̂_0: subtract the noise, x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t"),
            (ab_prev ** 0.5 * x0_hat - (1 - ab_prev) ** 0.5 * eps,
             "a sign error in x_{t−1}: the direction term is added, + √(1 − ᾱ_{t−1})·ε̂"),
            (ab_prev ** 0.5 * (x_t - (1 - alpha) ** 0.5 * eps) / alpha ** 0.5 + (1 - ab_prev) ** 0.5 * eps,
             "you used one step's α_t = ᾱ_t / ᾱ_{t−1} in x̂_0; use ᾱ_t, alpha_bar_t: "
             "x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t"),
            (x0_hat, "you returned x̂_0; x_{t−1} = √ᾱ_{t−1}·x̂_0 + √(1 − ᾱ_{t−1})·ε̂ re-noises it to step t−1"),
            (ab_prev ** 0.5 * x0_hat, "x_{t−1} is missing the direction term √(1 − ᾱ_{t−1})·ε̂"),
            (ab_prev ** 0.5 * x0_hat + (1 - ab) ** 0.5 * eps,
             "the direction term uses √(1 − ᾱ_t); it should use √(1 − ᾱ_{t−1}), the noise level of the step you go to"),
            (ab_prev * x0_hat + (1 - ab_prev) * eps, "use the square roots √ᾱ_{t−1} and √(1 − ᾱ_{t−1}), not ᾱ_{t−1}"),
            (ab_prev ** 0.5 * (x_t - (1 - ab) * eps) / ab ** 0.5 + (1 - ab_prev) ** 0.5 * eps,
             "x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t: the noise is scaled by √(1 − ᾱ_t), not 1 − ᾱ_t"),
            (ab_prev ** 0.5 * (x_t - (1 - ab) ** 0.5 * eps) + (1 - ab_prev) ** 0.5 * eps,
             "x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t: divide by √ᾱ_t"),
        )
        for wrong, sentence in mistakes:
            if torch.allclose(got, wrong.float(), atol=1e-5):
                fail(f"at t = {t} → {max(t_prev, 0) if t_prev >= 0 else 'the clean image'}: {sentence}")
        fail(f"at t = {t} → t_prev = {t_prev}, x_{{t−1}} differs from the DDIM step (η = 0) by up to "
             f"{(got - want).abs().max().item():.2g}")
    passed("the DDIM step (η = 0) matches the lab's ddim_step at t = 500 → 480, 980 → 960 and 20 → the clean image")
    return {"matched_steps": 3}
