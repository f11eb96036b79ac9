"""Checks for notebook 02: one rung of the noise ladder and the pairs (x_t, x_{t−1}) made on the fly.

The lecture's ladder (``connlab.diffusion.ladder``, schedule "notebook"): each rung adds fresh
noise of scale ``mag2use / steps2use`` and clips to [0, 1]::

    x_t = clip(x_{t−1} + (mag2use / steps2use) · z_t),  z_t ~ N(0, 1) ("norm") or U(−1, 1) ("uniform")

so, away from the clip, x_t − x_{t−1} has std (mag/T)·s and x_t − x_0 has std (mag/T)·√t·s, with
s = 1 for "norm" and 1/√3 for "uniform". The checks measure those on a grey image (x_0 = 0.5,
a noise scale small enough that nothing is clipped) and name the rule that was broken.
"""

from __future__ import annotations

import math

import torch

from connlab.diffusion.ladder import DIST_STD
from connlab.exercises.common import fail, passed, run_piece

T, MAG = 10, 0.25   # the checks' ladder: rungs of std 0.025, nothing reaches the clip around 0.5
SHAPE = (16, 1, 28, 28)
TOL = 0.06          # relative; 12,544 pixels measure a std to ~0.6 %


def _grey(value: float = 0.5) -> torch.Tensor:
    return torch.full(SHAPE, value)


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= TOL * want + 1e-7


def _check_rung_stats(diff: torch.Tensor, dist: str, what: str) -> None:
    step = MAG / T * DIST_STD[dist]
    rule = "mag2use/steps2use" + ("" if dist == "norm" else "/√3")
    mean, std = diff.mean().item(), diff.std().item()
    if abs(mean) > 0.1 * MAG / T:
        hint = " — torch.rand draws U(0, 1); U(−1, 1) is 2·rand − 1" if dist == "uniform" else ""
        fail(f"{what} should have mean 0, got {mean:.4f}{hint}")
    if not _close(std, step):
        if _close(std, MAG / T * DIST_STD["norm" if dist == "uniform" else "uniform"]):
            fail(f"{what} should have std {step:.4f} for dist2try = {dist!r}, got {std:.4f}: "
                 f"draw {'N(0, 1)' if dist == 'norm' else 'U(−1, 1)'} noise as dist2try says")
        if _close(std, MAG * DIST_STD[dist]):
            fail(f"{what} should have std {rule} = {step:.4f}, got {std:.4f}: divide mag2use by steps2use")
        fail(f"{what} should have std {rule} = {step:.4f} "
             f"(mag2use = {MAG}, steps2use = {T}, dist2try = {dist!r}), got {std:.4f}")


def check_noise_rung(noise_rung) -> dict:
    """``noise_rung(x, steps2use, mag2use, dist2try, generator)`` -> x one rung up, clipped to [0, 1]."""
    for dist in ("norm", "uniform"):
        x0 = _grey()
        x1 = run_piece("noise_rung", noise_rung, x0, T, MAG, dist, torch.Generator().manual_seed(1))
        if not isinstance(x1, torch.Tensor) or x1.shape != x0.shape:
            fail(f"noise_rung should return a tensor shaped like x {tuple(x0.shape)}, got "
                 f"{tuple(x1.shape) if isinstance(x1, torch.Tensor) else type(x1).__name__}")
        if torch.equal(x1, x0):
            fail("noise_rung returned x unchanged: add (mag2use / steps2use) · z to it")
        _check_rung_stats(x1 - x0, dist, f"one rung (x_1 − x_0, dist2try = {dist!r})")
    bright = run_piece("noise_rung", noise_rung, _grey(0.99), T, 1.0, "norm", torch.Generator().manual_seed(2))
    if bright.max().item() > 1.0 or bright.min().item() < 0.0:
        fail(f"a rung leaves [0, 1] (max {bright.max().item():.3f}, min {bright.min().item():.3f}): "
             "clip every rung with .clamp(0, 1), as np.clip in the lecture's notebook")
    again = run_piece("noise_rung", noise_rung, _grey(), T, MAG, "norm", torch.Generator().manual_seed(3))
    if torch.equal(again, run_piece("noise_rung", noise_rung, _grey(), T, MAG, "norm", torch.Generator().manual_seed(4))):
        fail("noise_rung gives the same noise for two different generators: draw z with generator=generator")
    passed(f"one rung adds noise of std mag2use/steps2use (norm) or that/√3 (uniform), mean 0, clipped to [0, 1]")
    return {"rung_std": MAG / T}


def check_ladder_pairs(ladder_pair) -> dict:
    """``ladder_pair(x0, t, steps2use, mag2use, dist2try, generator)`` -> (x_t, x_{t−1}) for 1 ≤ t ≤ steps2use."""
    x0 = _grey()
    measured = {}
    for t in (1, 3, T):
        out = run_piece(f"ladder_pair at t = {t}", ladder_pair, x0, t, T, MAG, "norm",
                        torch.Generator().manual_seed(10 + t))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            fail(f"ladder_pair should return the pair (x_t, x_{{t−1}}), got {type(out).__name__}")
        x_t, x_prev = out
        if x_t.shape != x0.shape or x_prev.shape != x0.shape:
            fail(f"x_t and x_{{t−1}} should be shaped like x0 {tuple(x0.shape)}, got {tuple(x_t.shape)}, "
                 f"{tuple(x_prev.shape)}")
        rung = MAG / T
        std_t, std_prev = (x_t - x0).std().item(), (x_prev - x0).std().item()
        want_t, want_prev = rung * math.sqrt(t), rung * math.sqrt(t - 1)
        if std_t < std_prev - 1e-7 and _close(std_prev, want_t):
            fail(f"the pair is swapped: return (x_t, x_{{t−1}}), the noisier image first")
        if t == 1 and std_prev > 1e-7:
            fail(f"at t = 1, x_{{t−1}} should be x_0 itself, got noise of std {std_prev:.4f} "
                 f"({std_prev / rung:.1f} rungs): the loop climbs one rung too many")
        _check_rung_stats(x_t - x_prev, "norm", f"x_t − x_{{t−1}} at t = {t}")
        if not _close(std_t, want_t):
            near = std_t / rung
            if _close(std_t, rung * t) and t > 1:
                fail(f"x_t − x_0 should have std (mag2use/steps2use)·√t = {want_t:.4f} at t = {t}, got {std_t:.4f} "
                     f"= (mag2use/steps2use)·t: draw fresh noise for every rung, do not reuse one z")
            fail(f"x_t − x_0 should have std (mag2use/steps2use)·√t = {want_t:.4f} at t = {t}, got {std_t:.4f} "
                 f"(√{near ** 2:.0f} rungs: an off-by-one in how many rungs the loop climbs?)")
        if t > 1 and not _close(std_prev, want_prev):
            fail(f"x_{{t−1}} − x_0 should have std (mag2use/steps2use)·√(t−1) = {want_prev:.4f} at t = {t}, "
                 f"got {std_prev:.4f}: x_{{t−1}} is the rung just below x_t")
        measured[t] = round(std_t, 4)
    passed(f"pairs are one rung apart, x_t − x_0 has std (mag2use/steps2use)·√t "
           f"({', '.join(f't = {t}: {s}' for t, s in measured.items())} for mag2use = {MAG}, steps2use = {T})")
    return {"std_x_t_minus_x0": measured}
