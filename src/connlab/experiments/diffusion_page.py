"""The report's section of ``connlab diffusion``: the lecture's claim, its rules, the numbers.

Three parts, each with its rule fixed before the numbers: the samples are digits (``quality_verdict``),
early steps lay down structure (``structure_verdict``, from summary.json's ``structure_first``), and DDIM
samples with far fewer steps (``fewer_steps_verdict``, from eval.json's ``fewer_steps``, written by
``connlab diffusion eval``).  ``section`` puts them on the page with the tables and figures.
"""

from __future__ import annotations

import math

from connlab.experiments.section import (CONTRADICTED, NOT_MEASURED, NOT_SUPPORTED, NO_INTERVALS, PARTLY, SUPPORTED,
                                         Run, Section, Table, combine, fmt, get, num, stored, with_figures)
from connlab.experiments.sentence import OLD_FOLDER, Part, sentence
from connlab.sampling.evaluate import DETAIL_CHANGE, FEWER_STEPS_RULE, STRUCTURE_BY, STRUCTURE_RULE


def structure_verdict(claim) -> tuple[str, str, str]:
    """(verdict, text, effect cell) of "early steps lay down structure" from summary.json's numbers."""
    step, steps, frac = num(claim, "structure_step"), num(claim, "steps"), num(claim, "structure_fraction")
    change, low, high = (num(claim, "relative_l2_change_after"), num(claim, "relative_l2_interval", 0),
                         num(claim, "relative_l2_interval", 1))
    verdict = get(claim, "verdict")
    if None in (step, steps, frac, change) or verdict not in (SUPPORTED, NOT_SUPPORTED):
        return NOT_MEASURED, NO_INTERVALS, "structure first: " + NO_INTERVALS
    ci = f" [95 % CI {low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    n = get(claim, "num", default="?")
    text = (f"on the label-free chain the label of x̂₀ settles (≥ {num(claim, 'agree') or 0.9:.0%} agree with the "
            f"final one) by step {step + 1:.0f} of {steps:.0f} ({frac:.0%} of the chain); after it x̂₀ still changes "
            f"by a relative L2 of {change:.3f}{ci} over {n} samples")
    return verdict, text, f"label settles at {frac:.0%} of the chain; x̂₀ change after it {change:.3f}{ci}, n = {n}"


def fewer_steps_verdict(claim) -> tuple[str, str, str]:
    """(verdict, text, effect cell) of "DDIM samples with far fewer steps" from eval.json's numbers."""
    ev, margin, ddpm = stored(claim, "evidence"), num(claim, "margin"), num(claim, "ddpm_frechet")
    if ev is None or margin is None or ddpm is None or get(claim, "verdict") not in (SUPPORTED, NOT_SUPPORTED,
                                                                                     CONTRADICTED):
        return NOT_MEASURED, f"{NO_INTERVALS} (connlab diffusion eval)", "DDIM vs DDPM: " + NO_INTERVALS
    k = get(claim, "ddim_steps", default="?")
    line = ev.text(f"DDIM-{k} − DDPM Fréchet distance", ".2f")
    text = (f"{line}; DDPM's distance {ddpm:.2f}, margin fixed before the run +{margin:.2f} "
            f"({num(claim, 'margin_share') or 0:.0%} of it)")
    needed = samples_to_settle(claim)
    if needed is not None:
        text += (f" — the interval is wider than the margin at N = {ev.n}; about N = {needed} "
                 "samples per sampler would settle it if the effect stays this size (width ∝ 1/√N)")
    return get(claim, "verdict"), text, f"{line} (margin +{margin:.2f})"


def samples_to_settle(claim) -> int | None:
    """The N per sampler at which "DDIM needs far fewer steps", not supported at this N, would be settled if
    its effect stays this size: the bootstrap interval narrows about as 1/√N, so the N at which its upper end
    falls below the margin (rounded up to 100). None when it is settled, or when no N would do it."""
    ev, margin = stored(claim, "evidence"), num(claim, "margin")
    if ev is None or margin is None or get(claim, "verdict") != NOT_SUPPORTED or math.isnan(ev.high) \
            or margin <= max(ev.effect, 0):
        return None
    half = (ev.high - ev.low) / 2
    return math.ceil(ev.n * (half / (margin - max(ev.effect, 0))) ** 2 / 100) * 100


def claim_parts(s: dict, claim_eval, quality: str) -> list:
    """The three parts of the claim in plain words (``connlab.experiments.sentence``), from the same numbers."""
    q = get(s, "quality", default={}) or {}
    conf, classes = num(q, "mean_confidence"), num(q, "classes_covered")
    parts = [Part(NOT_MEASURED, "whether the samples are digits", OLD_FOLDER) if conf is None or classes is None
             else Part(quality, f"from pure noise, DDIM-{get(q, 'steps', default='?')} draws digits of {classes:.0f} "
                                f"of the 10 classes, labelled with mean confidence {conf:.2f} by the classifier",
                       "" if quality == SUPPORTED else "the rule asks for all 10 classes at confidence ≥ 0.8: "
                                                       "train longer (--epochs) to settle it")]
    claim = get(s, "structure_first")
    step, steps, frac = num(claim, "structure_step"), num(claim, "steps"), num(claim, "structure_fraction")
    change, low, high = (num(claim, "relative_l2_change_after"), num(claim, "relative_l2_interval", 0),
                         num(claim, "relative_l2_interval", 1))
    if None in (step, steps, frac, change) or get(claim, "verdict") not in (SUPPORTED, NOT_SUPPORTED):
        parts.append(Part(NOT_MEASURED, "whether early steps lay down the structure", OLD_FOLDER))
    else:
        ci = f", 95 % interval {low:.3f} to {high:.3f}" if low is not None and high is not None else ""
        why = "" if get(claim, "verdict") == SUPPORTED else (
            f"the rule asks for the label to settle within the first {100 * STRUCTURE_BY:.0f} % of the chain"
            if frac > STRUCTURE_BY else f"the rule asks for a change after it clearly above {DETAIL_CHANGE:g}")
        parts.append(Part(get(claim, "verdict"),
                          f"the digit's label is settled {100 * frac:.0f} % of the way through the chain (step {step + 1:.0f} "
                          f"of {steps:.0f}) while the details keep changing after it (relative L2 {change:.3f}{ci}, "
                          f"{get(claim, 'num', default='?')} samples)", why))
    ev, margin = stored(claim_eval, "evidence"), num(claim_eval, "margin")
    if ev is None or margin is None or num(claim_eval, "ddpm_frechet") is None:
        parts.append(Part(NOT_MEASURED, "whether DDIM needs far fewer steps",
                          "measure it with connlab diffusion eval"))
    else:
        k, verdict = get(claim_eval, "ddim_steps", default="?"), get(claim_eval, "verdict")
        word = "higher" if ev.effect >= 0 else "lower"
        lo, hi = (ev.low, ev.high) if ev.effect >= 0 else (-ev.high, -ev.low)   # turned to match the word
        needed = samples_to_settle(claim_eval)
        settle = (f"its interval (up to {ev.high:+.2f}) still reaches past the margin fixed before the run "
                  f"(+{margin:.2f}, {100 * (num(claim_eval, 'margin_share') or 0):.0f} % of DDPM's distance)"
                  + (f"; about {needed} samples per sampler would settle it (connlab diffusion eval --num "
                     f"{needed})" if needed is not None else "")) if verdict == NOT_SUPPORTED else ""
        parts.append(Part(verdict, f"DDIM with {k} steps scores a Fréchet distance {abs(ev.effect):.2f} {word} than "
                                   f"DDPM with all its steps (95 % interval {lo:.2f} to {hi:.2f}, {ev.n} samples "
                                   "each)".replace("-", "−"), settle))
    return parts


def section(run: Run) -> Section:
    s = run.summary
    q = get(s, "quality", default={}) or {}
    quality, quality_text = quality_verdict(q, num(s, "frechet_floor"))
    structure, structure_text, structure_effect = structure_verdict(get(s, "structure_first"))
    fewer_claim = get(run.extra.get("eval.json", {}), "fewer_steps")
    fewer, fewer_text, fewer_effect = fewer_steps_verdict(fewer_claim)
    verdict = combine(quality, structure, fewer)
    text = "; ".join((quality_text, "structure first: " + structure_text, "far fewer steps: " + fewer_text))
    rule = (f"samples are digits (all 10 classes, classifier confidence ≥ 0.8); structure first: {STRUCTURE_RULE}; "
            f"far fewer steps: {FEWER_STEPS_RULE}; supported when all three hold, partly when some do")
    sec = Section("diffusion", "DDPM / DDIM: generating digits by repeated denoising",
                  "A network trained to predict the noise turns pure noise into digits step by step — early steps lay "
                  "down structure, late steps detail — and DDIM samples with far fewer steps.", verdict, text,
                  tables=[Table(["quantity", "value"], quantity_rows(s, q), f"{get(s, 'config', 'space', default='')} "
                                f"diffusion, {get(s, 'train_images', default='?')} training digits")],
                  rule=rule, effect="; ".join((structure_effect, fewer_effect)),
                  sentence=sentence(verdict, claim_parts(s, fewer_claim, quality)))
    agreement_table(sec, s)
    eval_tables(sec, run.extra.get("eval.json", {}), num(s, "frechet_floor"), fmt(num(q, "num_samples"), ".0f"))
    return with_figures(sec, run, figure_captions(run))


def quantity_rows(s: dict, q: dict) -> list[list[str]]:
    """The first table: the samples' quality, its floor, the network's size and time."""
    n_scored = fmt(num(q, "num_samples"), ".0f")
    return [["Fréchet distance to real test digits (classifier features)", fmt(num(q, "frechet_distance"), ".2f")],
            [f"its floor: real training vs real test digits, the same N = {n_scored}", fmt(num(s, "frechet_floor"), ".2f")],
            ["classifier's mean confidence on samples", fmt(num(q, "mean_confidence"), ".3f")],
            ["confidently labelled (> 0.9)", fmt(num(q, "confident_fraction"), ".1%")],
            ["classes covered (of 10)", fmt(num(q, "classes_covered"), ".0f")],
            ["samples scored", fmt(num(q, "num_samples"), ".0f")],
            ["U-Net parameters", fmt(num(s, "unet_params"), ",.0f")],
            ["training seconds (autoencoder + U-Net)", fmt(num(s, "train_seconds"), ".0f")],
            ["quality classifier's test accuracy", fmt(num(s, "classifier", "test_accuracy"), ".2%")]]


def quality_verdict(q: dict, floor: float | None) -> tuple[str, str]:
    """(verdict, text) of "the samples are digits": all 10 classes at confidence ≥ 0.8 (partly: 8 at 0.5)."""
    dist, conf, classes = num(q, "frechet_distance"), num(q, "mean_confidence"), num(q, "classes_covered")
    if dist is None or conf is None or classes is None:
        return NOT_MEASURED, "sample quality was not measured"
    if classes >= 10 and conf >= 0.8:
        quality = SUPPORTED
    elif classes >= 8 and conf >= 0.5:
        quality = PARTLY
    else:
        quality = NOT_SUPPORTED
    return quality, (f"from pure noise, DDIM-{get(q, 'steps', default='?')} samples cover {classes:.0f}/10 classes "
                     f"with mean classifier confidence {conf:.2f}; Fréchet distance {dist:.1f} vs the real-data "
                     "floor " + (f"{floor:.1f} ({dist / floor:.0f}× the floor)" if floor else NOT_MEASURED)
                     + " (digits: all 10 classes and confidence ≥ 0.8)")


def agreement_table(sec: Section, s: dict) -> None:
    """The label-free chain's share of samples whose x̂₀ already has its final label, at a few steps."""
    agreement = [v for v in get(s, "structure_first", "agreement", default=[]) or [] if isinstance(v, (int, float))]
    if agreement:
        shown = sorted({0, len(agreement) // 10, len(agreement) // 4, len(agreement) // 2, 3 * len(agreement) // 4,
                        len(agreement) - 1})
        sec.tables.append(Table(["DDIM step"] + [str(k + 1) for k in shown],
                                [["label of x̂₀ = final label"] + [f"{agreement[k]:.0%}" for k in shown]],
                                "the label-free chain: share of samples whose x̂₀ already has its final label"))


def eval_tables(sec: Section, ev: dict, floor: float | None, n_scored: str) -> None:
    """eval.json's quality vs sampling steps, with its own floor (and a note when the two N differ)."""
    if not get(ev, "rows"):
        return
    ev_rows = [[str(get(r, "sampler", default="?")).upper(), str(get(r, "steps", default="?")),
                fmt(num(r, "frechet_distance"), ".2f"), fmt(num(r, "mean_confidence"), ".3f"),
                fmt(num(r, "classes_covered"), ".0f"), fmt(num(r, "seconds"), ".1f")] for r in ev["rows"]]
    n_eval = get(ev, "num", default="?")
    ev_rows.append([f"floor: real training vs real test digits, N = {n_eval}", "",
                    fmt(num(ev, "frechet_floor"), ".2f"), "", "", ""])
    sec.tables.append(Table(["sampler", "steps", "Fréchet distance", "confidence", "classes", "seconds"], ev_rows,
                            f"quality vs sampling steps, {n_eval} samples each"))
    if num(ev, "frechet_floor") is not None and floor is not None and str(n_eval) != n_scored:
        sec.notes.append(f"Two floors, two sample sizes: a Fréchet distance between two finite sets shrinks as "
                         f"they grow, so each distance is set beside the floor of its own N — {floor:.2f} for "
                         f"the {n_scored} samples of the first table, {num(ev, 'frechet_floor'):.2f} for the "
                         f"{n_eval} samples per sampler of the second.")


def figure_captions(run: Run) -> dict[str, str]:
    """The figures in page order: samples, trajectory, each ``diffusion sample`` grid, the side-by-side chains."""
    samples = sorted(p.name for p in run.folder.glob("samples-*.png"))
    captions = {"samples.png": "Samples from pure noise, one grid (DDIM, EMA weights).",
                "trajectory.png": "From x_T to x_0 for a few samples: the rough shape appears early, the strokes sharpen "
                                  "late.",
                "sidebyside.png": "Exercise 2's ladder and DDPM from the same pure noise, step by step."}
    for name in samples:  # samples-<sampler><steps>[-eta<e>][-w<w>].png, written by `connlab diffusion sample`
        captions[name] = f"Samples written by connlab diffusion sample ({name[len('samples-'):-len('.png')]})."
    return {**{k: captions[k] for k in ("samples.png", "trajectory.png")},
            **{k: captions[k] for k in samples}, "sidebyside.png": captions["sidebyside.png"]}
