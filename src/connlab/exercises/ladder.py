"""Checks for notebook 02: the course's interpolation ladder (C24_MNIST_AE_diffusion_v3).

For each digit x_0 the course draws **one** noisy end point, then puts the T rungs on the straight line
between them, and trains on the pairs x_i → x_{i−1} plus x_0 → x_0::

    x_T = clip(x_0 + round(mag2use · z), 0, 1),   z ~ N(0, 1) ("norm") or U(−1, 1) ("uniform")
    x_i = x_0 + (i / T) · (x_T − x_0),            i = 0 … T  (T = steps2use)
    pairs (x_i, x_{i−1}) for i = 1 … T and (x_0, x_0): newN = N · (steps2use + 1)

The end point is random, so it is checked by what it must be (a rounded step of mag2use-scaled noise,
clipped, drawn with the given generator) and by its pixel statistics; rungs and pairs are deterministic
given x_0 and x_T, and are compared exactly.
"""

from __future__ import annotations

import math

import torch

from connlab.exercises.common import fail, passed, run_piece

SHAPE = (16, 1, 28, 28)
GREY = 0.3     # x_0 for the end-point check: x_0 + k lands on 0, 0.3 or 1 for an integer step k
TOL = 0.03     # on pixel fractions; 12,544 pixels measure one to ~0.005


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _expected(mag: float, dist: str) -> dict[str, float]:
    """Fractions of pixels of x_0 = 0.3 that stay, go to 1 (round(mag·z) ≥ 1) and go to 0 (≤ −1)."""
    if dist == "norm":
        up = 1 - _phi(0.5 / mag)
    else:
        up = max(0.0, (1 - 0.5 / mag) / 2)
    return {"stay": 1 - 2 * up, "up": up, "down": up}


def _fractions(x_t: torch.Tensor) -> dict[str, float]:
    return {"stay": (x_t - GREY).abs().lt(1e-6).float().mean().item(),
            "up": x_t.eq(1).float().mean().item(), "down": x_t.eq(0).float().mean().item()}


def check_end_point(end_point) -> dict:
    """``end_point(x0, mag2use, dist2try, generator)`` -> x_T = clip(x_0 + round(mag2use · z), 0, 1)."""
    x0 = torch.full(SHAPE, GREY)
    call = lambda mag, dist, seed: run_piece(  # noqa: E731
        "end_point", end_point, x0.clone(), mag, dist, torch.Generator().manual_seed(seed))
    x_t = call(1.0, "norm", 0)
    if not isinstance(x_t, torch.Tensor) or x_t.shape != x0.shape:
        fail(f"end_point should return x_T shaped like x0 {tuple(x0.shape)}, got "
             f"{tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__}")
    if not torch.equal(x_t, call(1.0, "norm", 0)):
        fail("the generator is ignored: two calls with the same generator seed gave different end points; "
             "draw z with generator=generator (torch.randn(x0.shape, generator=generator))")
    if torch.equal(x_t, call(1.0, "norm", 1)):
        fail("end_point gives the same noise for two different generators: draw z with generator=generator")
    if x_t.max() > 1 or x_t.min() < 0:
        fail(f"x_T leaves [0, 1] (from {x_t.min().item():.2f} to {x_t.max().item():.2f}): clip it, "
             ".clamp(0, 1), as np.clip in the course's notebook")
    on_grid = ((x_t - GREY).abs() < 1e-6) | (x_t == 0) | (x_t == 1)
    if not on_grid.all():
        fail(f"the noise is not rounded ({(~on_grid).float().mean().item():.0%} of the pixels of x_0 = {GREY} "
             "moved by a fraction): x_T = clip(x_0 + round(mag2use · z), 0, 1) moves each pixel by a whole "
             "number (torch.round), so it is either unchanged, 0 or 1")
    got = _fractions(x_t)
    if got["stay"] < 1e-3:
        fail("no pixel of x_T keeps its value: round only the noise, x_0 + round(mag2use · z), not "
             "round(x_0 + mag2use · z)")
    measured = {}
    for mag, dist in ((1.0, "norm"), (2.0, "norm"), (1.0, "uniform")):
        got = _fractions(call(mag, dist, 2))
        want = _expected(mag, dist)
        if got["down"] < 1e-3 < want["down"]:
            fail(f"with dist2try = {dist!r} no pixel goes darker: the noise must be centred on 0"
                 + (" — torch.rand draws U(0, 1); U(−1, 1) is 2·torch.rand(...) − 1" if dist == "uniform" else ""))
        if abs(got["stay"] - want["stay"]) > TOL:
            for other_mag, other_dist in ((1.0, "norm"), (1.0, "uniform"), (mag, "norm"), (mag, "uniform")):
                if (other_mag, other_dist) != (mag, dist) and \
                        abs(got["stay"] - _expected(other_mag, other_dist)["stay"]) <= TOL:
                    if other_dist != dist:
                        fail(f"dist2try = {dist!r} gave the noise of {other_dist!r}: draw "
                             f"{'N(0, 1)' if dist == 'norm' else 'U(−1, 1)'} as dist2try says")
                    fail(f"mag2use = {mag:g} gave the end point of mag2use = {other_mag:g}: scale the noise by "
                         "mag2use before rounding, round(mag2use · z)")
            fail(f"with mag2use = {mag:g}, dist2try = {dist!r}, {want['stay']:.0%} of the pixels should keep their "
                 f"value (|mag2use · z| < ½), got {got['stay']:.0%}")
        measured[f"{dist}, mag {mag:g}"] = round(got["stay"], 3)
    passed("x_T = clip(x_0 + round(mag2use · z), 0, 1), drawn with your generator; unchanged pixels "
           + ", ".join(f"{k}: {v:.1%}" for k, v in measured.items()))
    return {"unchanged_fraction": measured}


def _pair_of_images(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = torch.rand(4, 1, 28, 28, generator=g)
    x_t = (x0 + torch.round(torch.randn(x0.shape, generator=g))).clamp(0, 1)
    return x0, x_t


def check_rung(rung) -> dict:
    """``rung(x0, x_T, i, steps2use)`` -> x_i = x_0 + (i / steps2use) · (x_T − x_0)."""
    T = 10
    x0, x_t = _pair_of_images(torch.Generator().manual_seed(0))
    for i in (0, 3, 7, T):
        got = run_piece(f"rung at i = {i}", rung, x0.clone(), x_t.clone(), i, T)
        if not isinstance(got, torch.Tensor) or got.shape != x0.shape:
            fail(f"rung should return x_i shaped like x0 {tuple(x0.shape)}, got "
                 f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
        want = x0 + i / T * (x_t - x0)
        if torch.allclose(got, want, atol=1e-6):
            continue
        line = lambda f: x0 + f * (x_t - x0)  # noqa: E731
        if torch.allclose(got, x_t + i / T * (x0 - x_t), atol=1e-6):
            fail("the ladder runs backwards: x_0 is the clean digit at i = 0 and x_T the end point at "
                 "i = steps2use, x_i = x_0 + (i / steps2use)·(x_T − x_0)")
        for f, why in ((i // T, "i // steps2use is whole-number division; use i / steps2use"),
                       (i / (T + 1), "the fraction is i / steps2use, not i / (steps2use + 1): x_T is reached at "
                                     "i = steps2use"),
                       ((i + 1) / T, "an off-by-one: the fraction is i / steps2use, so rung 0 is x_0 itself"),
                       ((i - 1) / T, "an off-by-one: the fraction is i / steps2use, so rung 0 is x_0 itself")):
            if torch.allclose(got, line(f), atol=1e-6):
                fail(f"at i = {i}: {why}")
        if torch.allclose(got, line(i / T).clamp(0, 1), atol=1e-6):
            continue
        off = (got - want).abs().max().item()
        fail(f"at i = {i}, x_i should lie on the straight line x_0 + (i / steps2use)·(x_T − x_0), with no new "
             f"noise; it is off by up to {off:.2g}")
    passed("x_i = x_0 + (i / steps2use)·(x_T − x_0): x_0 at i = 0, x_T at i = steps2use, checked at i = 0, 3, 7, 10")
    return {"checked": [0, 3, 7, T]}


def check_training_pairs(training_pairs) -> dict:
    """``training_pairs(x0, x_T, steps2use)`` -> (inputs, targets), N·(steps2use + 1) of each."""
    T = 5
    x0, x_t = _pair_of_images(torch.Generator().manual_seed(1))
    n = len(x0)
    got = run_piece("training_pairs", training_pairs, x0.clone(), x_t.clone(), T)
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        fail(f"training_pairs should return (inputs, targets), got {type(got).__name__}")
    inputs, targets = (torch.as_tensor(a) for a in got)
    if inputs.shape != targets.shape or inputs.shape[1:] != x0.shape[1:]:
        fail(f"inputs and targets should both be (N·(steps2use + 1), 1, 28, 28), got {tuple(inputs.shape)} "
             f"and {tuple(targets.shape)}")
    rungs = torch.stack([x0 + i / T * (x_t - x0) for i in range(T + 1)])  # (T+1, N, 1, 28, 28)
    flat = rungs.flatten(2)                                                # (T+1, N, 784)

    def where(image: torch.Tensor) -> tuple[int, int] | None:
        d = (flat - image.flatten()).abs().amax(-1)                        # (T+1, N)
        k = int(d.argmin())
        return (k // n, k % n) if d.flatten()[k] < 1e-5 else None        # (rung i, digit)

    found = [(where(a), where(b)) for a, b in zip(inputs, targets)]
    if any(a is None for a, _ in found) or any(b is None for _, b in found):
        fail("some inputs or targets are not rungs of their digit's ladder: build them with "
             "rung(x0, x_T, i, steps2use), on the straight line from x_0 to x_T")
    if any(a[1] != b[1] for a, b in found):
        fail("a pair mixes two digits: the input and the target of a pair are rungs of the same digit "
             "(stack the rungs of all digits in the same order)")
    pairs = sorted((a[0], b[0]) for a, b in found)
    want = sorted([(i, i - 1) for i in range(1, T + 1) for _ in range(n)] + [(0, 0)] * n)
    if pairs == want:
        passed(f"{len(inputs)} = N·(steps2use + 1) pairs: x_i → x_{{i−1}} for i = 1 … {T} and x_0 → x_0, "
               f"each of one digit (N = {n}, steps2use = {T})")
        return {"pairs": len(inputs)}
    steps = {a - b for a, b in pairs}
    if steps == {-1} or steps == {-1, 0}:
        fail("the pairs are swapped: the input is the noisier rung x_i, the target the rung below, x_{i−1}")
    if all(b == 0 for _, b in pairs) and len(set(pairs)) > 1:
        fail("every target is the clean x_0: the target of x_i is the rung just below it, x_{i−1}")
    if (0, 0) not in pairs:
        fail(f"the pair x_0 → x_0 is missing ({len(inputs)} pairs for N = {n}, steps2use = {T}): the course adds "
             "it, newN = N·(steps2use + 1)")
    if (T, T - 1) not in pairs:
        fail(f"the top pair x_T → x_{{T−1}} is missing: i runs 1 … steps2use, range(1, steps2use + 1)")
    fail(f"the pairs should be x_i → x_{{i−1}} for i = 1 … steps2use and x_0 → x_0, once per digit; got the rung "
         f"pairs {sorted(set(pairs))}")
