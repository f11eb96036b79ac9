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

import torch

from connlab.data import to_unit
from connlab.diffusion import ddim_x0_path
from connlab.evidence import NOT_SUPPORTED, SUPPORTED, Evidence
from connlab.measures import (classifier_features, frechet_bootstrap, frechet_from_features, structure_first,
                              within_margin)
from connlab.quality import class_probabilities, frechet_floor, sample_quality

EVAL_SEED = 1234
EVAL_DDIM_STEPS = (10, 20, 50, 100)


def eval_settings(T: int) -> list[tuple[str, int]]:
    """(sampler, steps) for a run with T diffusion steps: the DDIM rows that fit in T, then DDPM."""
    return [("ddim", k) for k in EVAL_DDIM_STEPS if k <= T] + [("ddpm", T)]


def score(images, data, classifier, *, sampler: str, steps: int, seconds: float,
          guidance: float | None = None) -> dict:
    """Quality of ``images`` (N, 1, 28, 28) in [0, 1] against the test digits, with the time they took."""
    q = sample_quality(images, to_unit(data.test_images), classifier)
    return {"sampler": sampler, "steps": steps, "guidance": guidance, **q, "seconds": round(seconds, 3),
            "images_per_second": round(len(images) / max(seconds, 1e-9), 2)}


def floor(data, classifier, n: int) -> float:
    """The Fréchet distance between real train and real test digits at N = ``n``."""
    return frechet_floor(to_unit(data.train_images), to_unit(data.test_images), classifier,
                         min(n, len(data.train_images)))


def evaluate(gen, data, classifier, num: int, seed: int, guidance: float | None = None,
             progress: Callable[[str], None] | None = None, keep: dict | None = None) -> list[dict]:
    """One ``score`` row per setting of ``eval_settings``: ``num`` samples each from ``gen`` (a Generator),
    with guidance weight ``guidance`` (None: the run's default). ``keep``, when given, receives each
    setting's images under (sampler, steps)."""
    rows = []
    w = gen.guidance(guidance)
    for sampler, steps in eval_settings(gen.cfg.timesteps):
        t0 = time.perf_counter()
        images = gen.sample(sampler, steps, num, guidance=w, seed=seed)
        seconds = time.perf_counter() - t0
        if keep is not None:
            keep[(sampler, steps)] = images
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
    claim = result.get("fewer_steps")
    if claim:
        ev = Evidence.from_dict(claim["evidence"])
        lines += ["", f"DDIM-{claim['ddim_steps']} vs DDPM: {ev.text('Fréchet distance', '.2f')}; margin "
                      f"+{claim['margin']:.2f} ({claim['margin_share']:.0%} of DDPM's {claim['ddpm_frechet']:.2f}): "
                      f"{claim['verdict']}"]
    return "\n".join(lines)


# --- the lecture's two claims, tested as stated (docs/evidence-budgets.md §6–7) -------------------

STRUCTURE_STEPS = 50      # the DDIM chain the structure claim is measured on
STRUCTURE_SAMPLES = 100   # samples (the claim is per sample: n ≥ 100)
STRUCTURE_AGREE = 0.9     # "the label has settled": x̂₀'s label equals the final one for this share of samples
STRUCTURE_BY = 0.75       # ... by this share of the chain at the latest
DETAIL_CHANGE = 0.05      # and x̂₀ still changes after it by more than this relative L2 (whole 95 % CI)
STRUCTURE_RULE = (f"on the label-free DDIM-{STRUCTURE_STEPS} chain (η = 0, {STRUCTURE_SAMPLES} samples), the "
                  f"classifier's label of x̂₀ agrees with the final sample's for ≥ {STRUCTURE_AGREE:.0%} of samples "
                  f"from a step within the first {STRUCTURE_BY:.0%} of the chain on, and x̂₀ still changes after "
                  f"that step by a relative L2 > {DETAIL_CHANGE:g} (whole 95 % t interval)")

FEWER_STEPS_DDIM = 50
# Non-inferiority margin, fixed before any run: DDIM-50's Fréchet distance may be at most this share of
# DDPM-T's distance worse (the interval of the difference must stay below it).
FEWER_STEPS_MARGIN = 0.20
FEWER_STEPS_RULE = (f"same model, same N, same starting seed: Fréchet distance of DDIM-{FEWER_STEPS_DDIM} − "
                    f"DDPM (all T steps), bootstrap 95 % interval over the samples (real test digits fixed); "
                    f"supported when the whole interval lies below +{FEWER_STEPS_MARGIN:.0%} of DDPM's distance "
                    f"(non-inferiority)")


def structure_claim(gen, classifier, num: int = STRUCTURE_SAMPLES, seed: int = EVAL_SEED) -> dict:
    """"Early steps lay down structure, late steps detail" on the unconditional DDIM chain.

    A class-conditional run is sampled with the null label: with the class given, the label of
    x̂₀ is fixed from the first step by construction and says nothing about the sampler.
    Returns ``measures.structure_first``'s numbers plus the rule's ``verdict``.
    """
    def fn(x, t):
        return gen.net(x, t, None).float() if gen.cfg.class_cond else gen.net(x, t).float()

    steps = min(STRUCTURE_STEPS, gen.cfg.timesteps)
    g = torch.Generator(device=gen.device).manual_seed(seed)
    x_T = torch.randn((num, *gen.shape), generator=g, device=gen.device)
    path = ddim_x0_path(fn, gen.schedule, x_T, steps, prediction=gen.cfg.prediction, clip=gen.cfg.space == "pixel")
    with torch.no_grad():
        images = torch.stack([gen.to_images(x).clamp(0, 1) for x in path])  # (S, B, 1, 28, 28)
        labels = torch.stack([class_probabilities(x, classifier).argmax(1).cpu() for x in images])
    out = structure_first(labels, images.cpu(), agree=STRUCTURE_AGREE)
    low = out["relative_l2_interval"][0]
    ok = out["structure_fraction"] <= STRUCTURE_BY and low == low and low > DETAIL_CHANGE
    out["relative_l2_interval"] = [None if v != v else v for v in out["relative_l2_interval"]]
    out.update({"num": num, "guidance": None, "verdict": SUPPORTED if ok else NOT_SUPPORTED,
                "rule": STRUCTURE_RULE})
    return out


def fewer_steps_claim(real_images, ddpm_images, ddim_images, classifier, seed: int = 0) -> dict:
    """DDIM-50 vs DDPM-T Fréchet distance (same model, same N) with a bootstrap interval over the samples."""
    real = classifier_features(real_images, classifier)
    base, treat = classifier_features(ddpm_images, classifier), classifier_features(ddim_images, classifier)
    ev = frechet_bootstrap(real, base, treat, seed=seed)
    ddpm = frechet_from_features(real, base)
    margin = FEWER_STEPS_MARGIN * ddpm
    return {"ddim_steps": FEWER_STEPS_DDIM, "ddpm_frechet": ddpm, "ddim_frechet": frechet_from_features(real, treat),
            "margin": margin, "margin_share": FEWER_STEPS_MARGIN, "evidence": ev.as_dict(),
            "verdict": within_margin(ev, margin), "rule": FEWER_STEPS_RULE}
