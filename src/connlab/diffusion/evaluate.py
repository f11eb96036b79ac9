"""Scoring samples: the Fréchet distance, confidence and class coverage of ``connlab.quality``, per sampler.

| code name            | meaning                                                                        |
|----------------------|--------------------------------------------------------------------------------|
| ``frechet_distance`` | Fréchet distance between samples and real test digits in the classifier's      |
|                      | penultimate features (FID's formula, an MNIST feature extractor)               |
| ``frechet_floor``    | the same distance between real train and real test digits at the same N: the   |
|                      | best a generator can hope for at that sample size                               |
| ``mean_confidence``  | the classifier's mean max-softmax on the samples; ``confident_fraction``: > 0.9 |
| ``EVAL_DDIM_STEPS``  | the DDIM step counts ``connlab diffusion eval`` tabulates, then DDPM (all T)    |

Every setting samples from the same seed, so the rows differ by the sampler only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

EVAL_SEED = 1234
EVAL_DDIM_STEPS = (10, 20, 50, 100)


def eval_settings(T: int) -> list[tuple[str, int]]:
    """(sampler, steps) for a run with T diffusion steps: the DDIM rows that fit in T, then DDPM."""
    return [("ddim", k) for k in EVAL_DDIM_STEPS if k <= T] + [("ddpm", T)]


def score(images, data, classifier, *, sampler: str, steps: int, seconds: float,
          guidance: float | None = None) -> dict:
    """Quality of ``images`` (N, 1, 28, 28) in [0, 1] against the test digits, with the time they took."""
    from connlab.data import to_unit
    from connlab.quality import sample_quality

    q = sample_quality(images, to_unit(data.test_images), classifier)
    return {"sampler": sampler, "steps": steps, "guidance": guidance, **q, "seconds": round(seconds, 3),
            "images_per_second": round(len(images) / max(seconds, 1e-9), 2)}


def floor(data, classifier, n: int) -> float:
    """The Fréchet distance between real train and real test digits at N = ``n``."""
    from connlab.data import to_unit
    from connlab.quality import frechet_floor

    return frechet_floor(to_unit(data.train_images), to_unit(data.test_images), classifier,
                         min(n, len(data.train_images)))


def evaluate(gen, data, classifier, num: int, seed: int, guidance: float | None = None,
             progress: Callable[[str], None] | None = None) -> list[dict]:
    """One ``score`` row per setting of ``eval_settings``: ``num`` samples each from ``gen`` (a Generator),
    with guidance weight ``guidance`` (None: the run's default)."""
    rows = []
    w = gen.guidance(guidance)
    for sampler, steps in eval_settings(gen.cfg.timesteps):
        t0 = time.perf_counter()
        images = gen.sample(sampler, steps, num, guidance=w, seed=seed)
        seconds = time.perf_counter() - t0
        rows.append(score(images, data, classifier, sampler=sampler, steps=steps, seconds=seconds, guidance=w))
        if progress is not None:
            progress(f"{sampler.upper()}-{steps}: distance {rows[-1]['frechet_distance']:.2f} in {seconds:.1f} s")
    return rows


def format_eval(result: dict) -> str:
    """``eval.json``'s content as the markdown table ``connlab diffusion eval`` prints."""
    w = result.get("guidance")
    lines = [f"{result['space']} DDPM, {result['num']} samples per row"
             + (f", classifier-free guidance w = {w:g}" if w is not None else "") + "; classifier "
             f"{result['classifier']['source']} (test accuracy {result['classifier']['test_accuracy']:.2%})", "",
             "| sampler | steps | Fréchet distance | confidence | confident (>0.9) | classes | seconds | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['sampler'].upper()} | {r['steps']} | {r['frechet_distance']:.2f} | "
                     f"{r['mean_confidence']:.3f} | {r['confident_fraction']:.1%} | {r['classes_covered']}/10 | "
                     f"{r['seconds']:.1f} | {r['images_per_second']:.1f} |")
    lines.append(f"| real train vs test (floor) | | {result['frechet_floor']:.2f} | | | | | |")
    return "\n".join(lines)
