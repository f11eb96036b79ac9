"""The report's section of ``connlab ladder``: the lecture's claim, its rule, the numbers.

The claim: a one-step denoiser applied T times walks a noised digit back towards the clean one
(``CLAIM_RULE``), beside the same denoiser after its first epoch; for a run of the course's protocol,
the course's validation BCE beside our seeds (``course_rows``).
"""

from __future__ import annotations

import statistics

from connlab.diffusion.ladder import schedule_name
from connlab.evidence import CONTRADICTED
from connlab.experiments.ladder_course import PROTOCOL, PUBLISHED_VAL_BCE
from connlab.experiments.section import (NO_INTERVALS, NOT_MEASURED, PARTLY, REPRODUCTION_HEADER, SUPPORTED, Run,
                                         Section, Table, effect_text, fmt, get, num, reproduction_row,
                                         reproduction_settles, stored, with_figures)
from connlab.experiments.sentence import Wording, measured, sentence

CLAIM_RULE = ("gain = PSNR of x̂_0 − PSNR of x_T per test digit (paired by digit), 95 % t interval above 0; "
              "and the end no worse than the chain's best step (drift = x̂_0 − best step; an interval below 0 "
              "means the chain walks away from the digit, which makes the claim only partly supported)")


FIGURES = {
    "feed_back.png": "The course's question, answered by data: the denoiser fed its own output, step after step, "
                     "from a noised test digit.",
    "chain.png": "The chain x_T → x̂_0 on test digits: each column is one more denoising step.",
    "from_noise.png": "The same chain started from pure random pixels (\"what if the input was completely "
                      "random?\"), beside real digits.",
    "chain_psnr.png": "PSNR against the clean digit along the chain, each variant and the true noise ladder. "
                      "The y axis stops just above the largest PSNR below the 100 dB cap of an identical "
                      "image (the true ladder's x_0 is the clean digit itself); a point at the cap is drawn "
                      "on the top edge (figures made before this rule span the whole 100 dB)."}


def chain_line(ev: dict, label: str) -> str:
    """One chain's numbers for the page: PSNR along it, its gain and its drift, with intervals."""
    means = [v for v in get(ev, "mean_psnr", default=[]) or [] if isinstance(v, (int, float))]
    path = " → ".join(f"{v:.1f}" for v in means)
    best = get(ev, "best_step", default=None)
    line = f"{label}: PSNR {path} dB; {effect_text(stored(ev, 'gain'), 'gain', '.2f', 'dB')}"
    if isinstance(best, int) and best == len(means) - 1:
        return line + "; best at the last step (no drift)"
    return (line + f"; best at step {best}; {effect_text(stored(ev, 'drift'), 'drift after it', '.2f', 'dB')} "
            f"({get(ev, 'drift', 'verdict', default=NOT_MEASURED)})")


def section(run: Run) -> Section:
    s = run.summary
    chain = [v for v in get(s, "chain_psnr", default=[]) or [] if isinstance(v, (int, float))]
    trained, early = get(s, "evidence", "trained"), get(s, "evidence", "early")
    gain, drift = stored(trained, "gain"), stored(trained, "drift")
    verdict, text = chain_verdict(trained, chain)
    notes = [] if not isinstance(early, dict) else [early_note(early)]
    sec = Section("ladder", "Incremental denoising with T steps",
                  "A network trained to undo one small step of noise, applied T times, walks a noised digit back "
                  "towards the clean one: PSNR rises along the chain.", verdict, text, notes=notes,
                  tables=[Table(["variant", "PSNR x_T (dB)", "PSNR x̂_0 (dB)", "PSNR rises", "train s",
                                 "ink from noise", "ink, real digits"], variant_rows(s),
                                f"{get(s, 'eval_images', default='?')} test digits; "
                                f"{schedule_name(str(get(s, 'schedule')))} schedule, "
                                f"{get(s, 'dist')} noise, magnitude {get(s, 'mag')}")],
                  rule=CLAIM_RULE, effect=effect_text(gain, "PSNR gain", ".2f", "dB"))
    parts = [measured(gain, Wording(f"applied {get(s, 'steps', default='T')} times, the one-step denoiser ends "
                                    "with a PSNR against the clean digit", "higher than the noised start x_T",
                                    "lower than the noised start x_T", "whether the chain raises the PSNR",
                                    " dB", what="test digits"))]
    if drift is not None and drift.verdict == CONTRADICTED:
        parts.append(measured(drift, Wording(f"after its best step ({get(trained, 'best_step', default='?')}) the "
                                             "chain walks away from the digit and ends", "higher", "lower",
                                             "", " dB", what="test digits"), headline=False))
    sec.sentence = sentence(verdict, parts)
    if chain:
        sec.tables.append(Table(["step k"] + [str(k) for k in range(len(chain))],
                                [["PSNR (dB)"] + [f"{v:.2f}" for v in chain]], "PSNR along the chain, k steps applied"))
    course_rows(sec, s)
    return with_figures(sec, run, FIGURES)


def variant_rows(s: dict) -> list[list[str]]:
    """One row per variant: PSNR at the start and the end of the chain, whether it rises, time, ink from noise."""
    return [[name, fmt(num(e, "start_psnr"), ".2f"), fmt(num(e, "final_psnr"), ".2f"),
             str(get(e, "psnr_rises_in_steps", default=NOT_MEASURED)), fmt(num(e, "train_seconds"), ".0f"),
             fmt(num(e, "from_noise", "per_step", -1, "ink_fraction"), ".1%"),
             fmt(num(e, "from_noise", "real_digits", "ink_fraction"), ".1%")]
            for name, e in (get(s, "variants", default={}) or {}).items()]


def chain_verdict(trained, chain: list[float]) -> tuple[str, str]:
    """(verdict, text) of the trained chain (``CLAIM_RULE``): its gain, made partly by a drift after its best step."""
    gain, drift = stored(trained, "gain"), stored(trained, "drift")
    if gain is None:
        return NOT_MEASURED, (f"PSNR along the chain {' → '.join(f'{v:.2f}' for v in chain)} dB; {NO_INTERVALS}"
                              if chain else "the chain's PSNR was not measured")
    verdict = gain.verdict
    text = chain_line(trained, f"trained {get(trained, 'epochs', default='?')} epoch(s)")
    if gain.verdict == SUPPORTED and drift is not None and drift.verdict == CONTRADICTED:
        verdict = PARTLY
        text += " — the chain rises, then walks away from the digit after its best step"
    return verdict, text


def early_note(early: dict) -> str:
    """The same denoiser after its first epoch, beside the trained one."""
    return ("Next to it, the same denoiser after its first epoch (under-trained), on the same digits — "
            + chain_line(early, "after epoch 1")
            + (". Applied T times, an under-trained one-step denoiser walks away from the digit: each "
               "step's error is the next step's input."
               if get(early, "drift", "verdict") == CONTRADICTED else "."))


def course_rows(sec: Section, s: dict) -> None:
    """"Course vs ours": the course's validation BCE beside this run's seeds, with the reproduction verdict —
    or, for a run of another setting (the lab's own), its validation BCE as a row of its own."""
    per_seed = [v for v in get(s, "val_bce_per_seed", default=[]) or [] if isinstance(v, (int, float))]
    if not per_seed:
        return  # a run folder written before the validation BCE was measured
    sweep = get(s, "sweep")
    sec.notes.append("The course's questions. \"Does a smaller number still work?\" — "
                     + ("the sweep table above trains one model per T" if sweep else
                        "connlab ladder --sweep 1,5,10,20 trains one model per T and tabulates them")
                     + ". \"What would happen if the input was completely random?\" — from_noise.png runs the "
                       "chain from uniform random pixels; the table's \"ink from noise\" is the share of pixels it "
                       "leaves above 0.5, beside real digits'.")
    where = get(s, "validation", "set", default="?")
    digits = get(s, "validation", "digits", default="?")
    caption = (f"validation BCE: BCE of net(x_i) against x_(i−1) over the T+1 pairs of each of {digits} validation "
               f"digits ({where}), after the last epoch run, one value per seed")
    rep = get(s, "reproduction")
    if rep is not None:
        row = reproduction_row(f"diffusion notebook ({PROTOCOL})", rep)
        sec.tables.insert(0, Table(REPRODUCTION_HEADER, [row], caption))
        settle = reproduction_settles(rep)
        sec.notes.insert(0, f"The course's notebook ends at validation BCE {PUBLISHED_VAL_BCE} (one run); ours, over "
                            f"{len(per_seed)} seed(s): {', '.join(f'{v:.4f}' for v in per_seed)} — {row[5]}"
                            + (f"; {settle}" if settle else "") + ".")
        return

    differs = get(s, "course", "differs", default=None)
    mean = statistics.fmean(per_seed)
    spread = f" ± {statistics.stdev(per_seed):.4f} (std)" if len(per_seed) > 1 else ""
    label = f"this run's setting ({get(s, 'preset', default='lab')}: T = {get(s, 'steps')}, {get(s, 'schedule')})"
    why = ("not the course's protocol" + (f": {', '.join(differs)}" if differs else "")) if differs is not None else ""
    sec.tables.insert(0, Table(REPRODUCTION_HEADER, [[label, "— (no course figure)", f"{mean:.4f}{spread}", "",
                                                      str(len(per_seed)), why or NOT_MEASURED, ""]], caption))
