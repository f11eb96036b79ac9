"""The report's section of ``connlab autoencoder``: the claim, its rules, the numbers (lab and course).

``section`` renders a lab run (every skip variant against none, with the trivial baselines and the
A/B/C answer of ``--iterate``) or, for a ``--preset course`` run, ``course_section``: the course's
published figures beside our seeds and the claim under the course's own protocol.
"""

from __future__ import annotations

from connlab.experiments.section import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, NOT_SUPPORTED, REPRODUCTION_HEADER,
                                         SUPPORTED, Run, Section, Table, comparison_settles, effect_of, evidence_line,
                                         fmt, get, load_run, num, pm, reproduction_row, reproduction_settles, stored,
                                         weakest, with_figures)
from connlab.experiments.sentence import Wording, measured, sentence

# The claim's rules, written once: the page prints them next to each comparison.
RULES = {
    "psnr": "compare(PSNR[none], PSNR[{skip}], better='higher'), paired by seed (same data order and noise), "
            "95 % t interval; supported when it lies above 0",
    "bce": "compare(BCE[none], BCE[{skip}], better='lower'), paired by seed, 95 % t interval; "
           "supported when it lies below 0",
}
ITERATE_RULE = ("per test digit, compare(PSNR after pass 1, PSNR after pass {k}, better='higher'), paired t over "
                "the test digits; supported → (A) it keeps improving, contradicted → (C) it walks away from the "
                "digit, interval around 0 → (B) no change at this budget")
ANSWERS = {SUPPORTED: "(A) keeps improving", CONTRADICTED: "(C) walks away from the digit",
           NOT_SUPPORTED: "(B) no measurable change at this budget"}

SKIP_WORDS = {"concat": "the concatenated skips (a U-Net)", "add": "the added skips"}
# The claim in plain words, one comparison each (treatment − baseline; connlab.experiments.sentence says the numbers).
SAYS = {
    "psnr": lambda skip: Wording(f"with {SKIP_WORDS.get(skip, f'skip = {skip}')}, the reconstructions are",
                                 "sharper", "blurrier", f"whether skip = {skip} sharpens the reconstructions", " dB"),
    "bce": lambda skip: Wording(f"with {SKIP_WORDS.get(skip, f'skip = {skip}')}, the test BCE is", "higher",
                                "lower", f"whether skip = {skip} lowers the test BCE", spec=".4f"),
}
COURSE_SAYS = Wording("with both concatenation skips, the course's network ends with a validation BCE", "higher",
                      "lower", "whether the skips lower the validation BCE", spec=".4f")
FIGURES = {
    "reconstructions.png": "Noisy test digits (top), each variant's reconstruction of them, and the clean digits "
                           "(bottom): the skip variants keep the strokes sharper.",
    "loss_curves.png": "Training loss and test BCE per epoch for each variant: where the curves part is where the "
                       "skips start to help.",
    "iterate.png": "The denoiser fed its own output again and again (the lecture's A/B/C question): each row is "
                   "one more pass.",
}


def section(run: Run) -> Section:
    if get(run.summary, "protocol") == "course" or get(run.config, "preset") == "course":
        return course_section(run)
    s = run.summary
    variants = get(s, "variants", default={}) or {}
    rows, notes = lab_rows(s, variants)
    verdict, text, said = skip_claim(s, variants)
    floor = num(s, "baselines", "mean_image", "psnr")
    best_psnr = max((v for v in (num(e, "test_psnr") for e in variants.values()) if v is not None), default=None)
    if floor is not None and best_psnr is not None and best_psnr <= floor:
        verdict = INCONCLUSIVE
        text += f"; no model beats the mean-image baseline (PSNR {floor:.2f} dB) yet"
        said = (f"No model beats the mean training image yet (best PSNR {best_psnr:.2f} dB against its "
                f"{floor:.2f} dB), so the skips cannot be judged: inconclusive at this budget.")
    sec = Section("autoencoder", "Denoising autoencoder without and with skip connections (U-Net)",
                  "Skip connections from encoder to decoder (a U-Net) let a denoising autoencoder reconstruct digits "
                  "better than the plain encoder-decoder.", verdict, text,
                  tables=[Table(["model", "params", "test BCE", "PSNR (dB)", "SSIM", "train s"], rows,
                                f"{get(s, 'test_images', default='?')} noisy test digits (noise {get(s, 'noise')}, "
                                f"{get(s, 'noise_dist')}), {get(s, 'epochs')} epochs, mean ± std over "
                                f"{get(s, 'seeds')} seed(s)")],
                  notes=notes,
                  rule="PSNR higher and BCE lower with each skip variant than with none, each paired by seed with a "
                       "95 % t interval; supported when every one of these comparisons is (the weakest decides)",
                  effect=effect_of(get(s, "evidence", "concat", "psnr"), "concat − none PSNR", spec=".2f", unit="dB"),
                  sentence=said)
    passes = iterate_passes(s)
    if passes:
        n = max(len(v) for v in passes.values())
        it_rows = [[f"skip = {k}"] + [fmt(num(v, i, "psnr"), ".2f") for i in range(n)] for k, v in passes.items()]
        sec.tables.append(Table(["denoiser fed its own output"] + [f"pass {i + 1}" for i in range(n)], it_rows,
                                "test PSNR (dB) after each pass (the lecture's A/B/C question)"))
        sec.notes.append(iterate_note(s, passes))
    return with_figures(sec, run, FIGURES)


def lab_rows(s: dict, variants: dict) -> tuple[list[list[str]], list[str]]:
    """The table's rows (each variant, then each baseline) and the notes on baselines whose BCE is not shown."""
    rows, notes = [], []
    for name, e in variants.items():
        rows.append([f"skip = {name}", fmt(num(e, "params"), ",.0f"), pm(num(e, "test_bce"), num(e, "test_bce_std")),
                     pm(num(e, "test_psnr"), num(e, "test_psnr_std"), ".2f"),
                     pm(num(e, "test_ssim"), num(e, "test_ssim_std"), ".3f"), fmt(num(e, "train_seconds"), ".0f")])
    for name, b in (get(s, "baselines", default={}) or {}).items():
        bce_text = fmt(num(b, "bce")) if num(b, "bce") is not None else "—"
        rows.append([f"baseline: {name.replace('_', ' ')}", "0", bce_text, fmt(num(b, "psnr"), ".2f"),
                     fmt(num(b, "ssim"), ".3f"), ""])
        if num(b, "bce") is None and isinstance(get(b, "bce_note"), str):
            notes.append(f"baseline {name.replace('_', ' ')}: BCE not shown, dominated by the log clamp — "
                         f"{b['bce_note']}")
    return rows, notes


def skip_claim(s: dict, variants: dict) -> tuple[str, str, str]:
    """(verdict, text, sentence) of the claim: every skip variant against none, PSNR and BCE (``RULES``)."""
    skips = [k for k in variants if k != "none"]
    if "none" not in variants or not skips:
        return (NOT_MEASURED, "needs the skip = none run and at least one skip variant (--skip all)",
                "The claim needs the plain encoder-decoder (skip = none) and at least one skip variant in the same "
                "run (--skip all): not measured.")
    lines, verdicts, parts = [], [], []
    for skip in skips:
        for metric, label, spec, unit in (("psnr", "PSNR", ".2f", "dB"), ("bce", "test BCE", ".4f", "")):
            v, line = evidence_line(get(s, "evidence", skip, metric), RULES[metric].format(skip=skip),
                                    f"skip = {skip} vs none: {label}", spec=spec, unit=unit)
            verdicts.append(v)
            lines.append(line)
            parts.append(measured(stored(s, "evidence", skip, metric), SAYS[metric](skip), headline=metric == "psnr"))
    verdict = weakest(verdicts)
    return verdict, " | ".join(lines), sentence(verdict, parts)


def iterate_passes(s: dict) -> dict:
    """--iterate's numbers per variant ({name: [one dict per pass]}); {} when the run did not feed back."""
    iterate = get(s, "iterate")
    if not isinstance(iterate, dict):
        return {}
    return {k: v for k, v in iterate.items() if isinstance(v, list) and v}


def iterate_note(s: dict, passes: dict) -> str:
    return iterate_answer(passes, num(s, "iterate", "clean_mean_intensity"), get(s, "iterate", "evidence"))


def iterate_answer(passes: dict, clean_intensity: float | None, evidence: dict | None = None) -> str:
    """The A/B/C answer per variant: the rule on the stored per-digit comparison (pass 1 vs the last)."""
    parts = []
    for name, per_pass in passes.items():
        first, last = num(per_pass, 0, "psnr"), num(per_pass, -1, "psnr")
        if first is None or last is None or len(per_pass) < 2:
            continue
        verdict, line = evidence_line(get(evidence or {}, name), ITERATE_RULE.format(k=len(per_pass)),
                                      f"PSNR pass {len(per_pass)} − pass 1", spec=".2f", unit="dB")
        answer = ANSWERS.get(verdict, "no answer")
        parts.append(f"skip = {name}: PSNR {first:.2f} → {last:.2f} dB over {len(per_pass)} passes: {answer} "
                     f"({line})")
    if not parts:
        return "feeding the output back: not measured"
    return "feeding the denoised output back in: " + "; ".join(parts) + (
        f"; clean digits' mean intensity {clean_intensity:.3f}" if clean_intensity is not None else "")


# --- the course's protocol: its numbers beside ours ---------------------------------------------------

COURSE_RULE = ("compare(validation BCE[none], validation BCE[concat], better='lower'), paired by seed (same "
               "training noise and data order), 95 % t interval; supported when it lies below 0")
REPRODUCTION_RULE = ("a course figure (one run) is reproduced when it lies inside our 95 % prediction interval "
                     "for one run, mean ± t(n−1)·s·√(1 + 1/n) over our seeds")


def course_section(run: Run) -> Section:
    """A ``--preset course`` run: the course's published figures beside our seeds, and its claim tested under
    its own protocol (with the lab's setting beside it when a lab run lies in the same folder)."""
    s = run.summary
    variants = get(s, "variants", default={}) or {}
    rep_rows, settle_notes = reproduction_rows(s)
    validation = get(s, "validation_text") or get(s, "validation") or "not recorded"
    tables = course_tables(run, rep_rows, validation)
    verdict, line = evidence_line(get(s, "evidence", "concat", "bce"), COURSE_RULE, "validation BCE concat − none")
    said = sentence(verdict, [measured(stored(s, "evidence", "concat", "bce"), COURSE_SAYS)])
    if not ("none" in variants and "concat" in variants):
        verdict, line = NOT_MEASURED, "needs the skip = none and skip = concat runs (--skip all)"
        said = ("The claim needs the course's network without skips and with both concatenation skips in the same "
                "run (--skip all): not measured.")
    notes = [f"validation set: {validation}; the course validates on MNIST's 10,000 test digits",
             f"early stopping watched the validation BCE of a fixed slice, the first "
             f"{get(s, 'monitor_images', default='?')} noisy validation digits (the course watches all 10,000 "
             "every epoch, three times the cost of an epoch's training)",
             *settle_notes]   # the reproduction rule is in the verdict's rule (report: "the rule and the numbers")
    not_reproduced = [r[0] for r in rep_rows if r[5] == "not reproduced"]
    if not_reproduced:
        notes.append(course_gap_note(rep_rows))
    sec = Section("autoencoder-course", "Exercise 1 as the course runs it: the course's numbers beside ours",
                  "Skip connections lower the validation loss of the course's denoising autoencoder (the course's "
                  "runs: 0.1652 without skips, 0.1447 with both concatenation skips).", verdict, line,
                  tables=tables, notes=notes,
                  rule=COURSE_RULE + "; and, separately, " + REPRODUCTION_RULE,
                  effect=effect_of(get(s, "evidence", "concat", "bce"), "concat − none validation BCE"),
                  sentence=said)
    passes = iterate_passes(s)
    if passes:
        k = max(len(v) for v in passes.values())
        sec.tables.append(Table(["fed back (the feedback notebook)"] + ["prediction"] +
                                [f"fed back {i}×" for i in range(1, k)],
                                [[f"skip = {name}"] + [fmt(num(v, i, "bce"), ".4f") for i in range(k)]
                                 for name, v in passes.items()], "validation BCE after each pass"))
        sec.notes.append(iterate_note(s, passes))
    return with_figures(sec, run, FIGURES)


def reproduction_rows(s: dict) -> tuple[list[list[str]], list[str]]:
    """Each course figure beside our seeds (``REPRODUCTION_HEADER``'s rows), and what n would settle each."""
    rep_rows, settle_notes = [], []
    for skip, reps in (get(s, "course", "reproduction", default={}) or {}).items():
        for rep in reps if isinstance(reps, list) else []:
            label = f"skip = {skip}: {get(rep, 'source', default='course')}"
            rep_rows.append(reproduction_row(label, rep))
            settle_notes.append(f"{label}: {reproduction_settles(rep)}")
    return rep_rows, settle_notes


def course_tables(run: Run, rep_rows: list[list[str]], validation: str) -> list[Table]:
    """The course's figures beside ours, the claim in each setting (this run's and a lab sibling's), the variants."""
    s = run.summary
    deviations = get(s, "course", "deviations", default={}) or {}
    protocol = ("the course's protocol" if not deviations else "NOT the course's protocol: " + ", ".join(
        f"{k} {get(v, 'ours')} (course: {get(v, 'course')})" for k, v in deviations.items()))
    tables = [Table(REPRODUCTION_HEADER, rep_rows,
                    f"validation BCE after training (all {get(s, 'test_images', default='?')} validation digits: "
                    f"{validation}); ours over {get(s, 'seeds')} seed(s); {protocol}")]
    claim_rows = [claim_row("course protocol (this run)", s)]
    lab = lab_sibling(run)
    if lab is not None:
        claim_rows.append(claim_row(f"the lab's setting ({lab.folder.name}: {get(lab.summary, 'train_images')} "
                                    f"digits, {get(lab.summary, 'epochs')} epochs, Gaussian noise)", lab.summary))
    tables.append(Table(["setting", "skip = concat vs none: BCE effect [95 % CI]", "n", "verdict",
                         "what n settles it"], claim_rows, "the claim, tested in each setting"))
    rows = [[f"skip = {name}", fmt(num(e, "params"), ",.0f"), pm(num(e, "test_bce"), num(e, "test_bce_std")),
             pm(num(e, "test_psnr"), num(e, "test_psnr_std"), ".2f"),
             ", ".join(str(get(r, "epochs_run", default="?")) for r in get(e, "seeds", default=[]) or []),
             fmt(num(e, "train_seconds"), ".0f")] for name, e in (get(s, "variants", default={}) or {}).items()]
    tables.append(Table(["model", "params", "validation BCE", "PSNR (dB)", "epochs run per seed", "train s"], rows,
                        "mean ± std over seeds; early stopping (patience "
                        f"{get(s, 'patience')}) can end a seed before {get(s, 'epochs')} epochs"))
    return tables


def claim_row(setting: str, summary: dict) -> list[str]:
    value = get(summary, "evidence", "concat", "bce")
    ev = stored(value)
    if ev is None:
        return [setting, "not measured", "", NOT_MEASURED, ""]
    return [setting, ev.text("", ".4f"), str(ev.n), ev.verdict, comparison_settles(value)]


def lab_sibling(run: Run) -> Run | None:
    """The lab-setting autoencoder run beside this one (a demo folder holds both), or None."""
    for folder in sorted(run.folder.parent.iterdir()) if run.folder.parent.is_dir() else ():
        if folder == run.folder or not (folder / "summary.json").is_file() or not (folder / "config.json").is_file():
            continue
        try:
            other = load_run(folder)
        except Exception:  # noqa: BLE001 - a folder that is no run folder is simply not a sibling
            continue
        if other.experiment == "autoencoder" and get(other.summary, "protocol", default="lab") != "course":
            return other
    return None


def course_gap_note(rep_rows: list[list[str]]) -> str:
    """The closing note where a course figure lies outside our interval: which way, and what may explain it."""
    parts = [f"{r[0]}: course {r[1]}, ours {r[2]} ({r[6]})" for r in rep_rows if r[5] == "not reproduced"]
    return ("not reproduced — " + "; ".join(parts) + ". Why, as far as connlab can tell: every fact of the "
            "course's protocol that its notebooks state is followed here (network, Keras initialisation, noise drawn "
            "once, the first 1,000 digits, Adam 1e-3, BCE, batch 128, 20 epochs, early stopping); what remains is "
            "Keras vs PyTorch numerics (TensorFlow's Adam ε = 1e-7 vs PyTorch's 1e-8, its shuffling, float "
            "reductions), the validation set when MNIST's test set is absent, and the chance of one run: the "
            "course's figures differ by 0.006 among themselves, about its seed-to-seed spread.")
