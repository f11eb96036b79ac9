"""What ``connlab depth --preset course`` prints and what the report shows of it (``connlab.experiments.depth_course``
runs the course's residual notebook): the course's figures beside our seeds, the claim's verdict and sentence,
the variants table and the notes on runs that stay on the plateau.
"""

from __future__ import annotations

import math

from connlab.evidence import NOT_REPRODUCED, Reproduction
from connlab.experiments.depth_course import (COURSE_BLOCKS, KINDS, LOSSES, ONE_CLASS, PLATEAU, RULE, claim_key, judge,
                                              variant_name)
from connlab.experiments.section import (NOT_MEASURED, REPRODUCTION_HEADER, Run, Section, Table, comparison_settles,
                                         effect_of, evidence_line, fmt, get, num, reproduction_row,
                                         reproduction_settles, stored, stored_reproduction, with_figures)
from connlab.experiments.sentence import Wording, measured, sentence


def describe(summary: dict) -> str:
    lines = ["| variant | params | val accuracy | most common class share | epochs |", "|---|---:|---:|---:|---:|"]
    for name, v in summary["variants"].items():
        lines.append(f"| {name} | {v['params']:,} | {v['val_accuracy']:.3f} ± {v['val_accuracy_std']:.3f} | "
                     f"{v['majority_share']:.3f} | {v['epochs_trained']:.1f} |")
    for kind, rep in (summary.get("reproduction") or {}).items():
        lines.append(f"{kind}: " + _reproduction_text(rep))
    return "\n".join(lines + [summary["verdict"]])


def _reproduction_text(value) -> str:
    try:
        return Reproduction.from_dict(value).text(".3f")
    except (TypeError, ValueError, KeyError):
        return NOT_MEASURED


def section(run: Run) -> Section:
    s = run.summary
    verdict, text = judge(s)
    key = claim_key(s)
    sec = Section("depth", "The course's residual notebook: 3 identity blocks without and with residuals",
                  "Residual connections let the deeper net learn: without them the course's network predicts one "
                  "class for every digit (validation accuracy 0.100), with them it reaches 0.634.", verdict, text,
                  rule=RULE, effect=effect_of(get(s, "evidence", key or ""), "residual − plain accuracy", spec=".3f"),
                  sentence=plain_sentence(s, verdict, key))
    if get(s, "complete") is False:
        done = ", ".join(f"{name} {len(get(v, 'seeds', default=[]))}"
                         for name, v in (get(s, "variants", default={}) or {}).items())
        sec.notes.append(f"Partial run (seeds done: {done} of {get(s, 'seeds')}): the numbers so far; "
                         "`--resume` with the same --out goes on.")
    reps = get(s, "reproduction")
    if isinstance(reps, dict):
        rows = [reproduction_row(f"{kind} (bce, {COURSE_BLOCKS} blocks)", reps.get(kind), ".3f") for kind in KINDS]
        for row, kind in zip(rows, KINDS):
            row.append(reproduction_settles(reps.get(kind)))
        sec.tables.append(Table(REPRODUCTION_HEADER + ["what n settles it"], rows,
                                f"validation accuracy, the course's run beside ours; "
                                f"validation: {get(s, 'validation_text', default='?')}"))
    else:
        diffs = "; ".join(get(s, "protocol_differences", default=[]) or []) or NOT_MEASURED
        sec.notes.append(f"No course-vs-ours verdict: the course's figures belong to its protocol, and this run "
                         f"differs from it in: {diffs}.")
    sec.tables.append(variants_table(s))
    for k, ev in sorted((get(s, "evidence", default={}) or {}).items()):
        loss, blocks = k.split("-b")
        if k == key:   # the verdict's own line says the rest
            sec.notes.append(f"the claim: {comparison_settles(ev)}")
            continue
        v, line = evidence_line(ev, "compare(plain, residual), paired by seed",
                                f"residual − plain validation accuracy ({loss}, {blocks} blocks)", spec=".3f")
        sec.notes.append(f"shown ({LOSSES[loss]}): {line}; {comparison_settles(ev)}")
    sec.notes += course_notes(s)
    return with_figures(sec, run, {"course_depth.png": "Validation accuracy of each seed and variant (left; the red "
                                                       "star is the course's run) and per epoch (right)."})


def plain_sentence(s: dict, verdict: str, key: str | None) -> str:
    """The verdict in one plain sentence (``connlab.experiments.sentence``), from the stored comparison."""
    if key is None:
        return "No plain/residual pair was trained in this run: not measured."
    loss, blocks = key.split("-b")
    return sentence(verdict, [measured(stored(s, "evidence", key), Wording(
        f"with residual connections, the course's {blocks}-block network reaches a validation accuracy",
        "higher", "lower", "whether residual connections raise the validation accuracy", spec=".3f"))])


def variants_table(s: dict) -> Table:
    rows = []
    for name, v in (get(s, "variants", default={}) or {}).items():
        n = len(get(v, "seeds", default=[]) or [])
        rows.append([name, fmt(num(v, "params"), ",.0f"),
                     f"{fmt(num(v, 'val_accuracy'), '.3f')} ± {fmt(num(v, 'val_accuracy_std'), '.3f')}",
                     fmt(num(v, "val_bce")), fmt(num(v, "val_cce")), fmt(num(v, "majority_share"), ".3f"),
                     f"{get(v, 'one_class_seeds', default='?')} of {n}", fmt(num(v, "epochs_trained"), ".1f"),
                     fmt(num(v, "train_accuracy"), ".3f")])
    return Table(["variant (kind-loss-blocks)", "params", "val accuracy (mean ± sd)", "val BCE", "val CCE",
                  "most common predicted class: share", f"seeds predicting one class (≥ {100 * ONE_CLASS:.0f} %)",
                  "epochs trained", "train accuracy"], rows,
                 "final weights (early stopping keeps the last, as Keras does); mean over the seeds done")




def outside_notes(s: dict) -> list[str]:
    """For each course figure outside our interval for one run: where it lies, and the likeliest reason."""
    notes = []
    for kind in KINDS:
        rep = stored_reproduction(get(s, "reproduction", kind))
        v = get(s, "variants", variant_name(kind, "bce", COURSE_BLOCKS), default={})
        if rep is None or rep.verdict != NOT_REPRODUCED or math.isnan(rep.low):
            continue
        n, stuck = len(get(v, "seeds", default=[]) or []), int(get(v, "one_class_seeds", default=0) or 0)
        where = (f"The course's {kind} figure {rep.published:.3f} lies {abs(rep.gap):.3f} "
                 f"{'above' if rep.gap > 0 else 'below'} our interval for one run ({rep.low:.3f} to {rep.high:.3f}, "
                 f"n = {rep.n}). ")
        if rep.published < rep.low:
            what = (f"The course's run stayed on the plateau where every one of the ten sigmoid answers is about "
                    f"0.1, the class prior (its training loss at epoch 20, 0.3248, is the BCE of that answer, "
                    f"{PLATEAU:.4f}), and predicted one class; "
                    f"{stuck} of our {n} {kind} runs did. ")
        else:
            what = (f"{stuck} of our {n} {kind} runs stayed on the plateau where every output is about 0.1 and "
                    "predicted one class; the course's run left it. ")
        notes.append(where + what + plateau_reason(stuck if rep.published < rep.low else n - stuck, n))
    return notes


def plateau_reason(matching: int, n: int) -> str:
    """Why a course run differs from ours when ``matching`` of our ``n`` runs did what the course's did."""
    if matching:
        return ("Whether a net leaves that plateau depends on its initial weights and noise draw, and some of ours "
                "did what the course's run did: the likeliest reason is chance (the course shows one unseeded run).")
    bound = 1 - 0.05 ** (1 / n) if n else 1.0
    return (f"None of ours did what the course's run did: if that is chance, it is a draw of at most "
            f"{100 * bound:.0f} % of runs (the one-sided 95 % bound for 0 of {n}), so a difference of numerics is "
            "a candidate too: Keras' (TensorFlow's kernels, Adam's ε = 1e-7), which this lab cannot run.")


def course_notes(s: dict) -> list[str]:
    counts = get(s, "validation_class_counts", default=[]) or []
    notes = [
        "The course trains this classifier with binary cross-entropy on one-hot labels (Keras' "
        "'binary_crossentropy' after a softmax layer). Keras computes it on the logits the softmax caches, as ten "
        "independent sigmoid yes/no losses averaged (its first epoch starts at ln 2 = 0.693; the BCE of the softmax "
        "probabilities would start at 0.325), where one label of ten calls for the categorical cross-entropy. It "
        "is kept as the course's setting (the rows 'bce'); the rows 'cce' train the same nets with categorical "
        "cross-entropy, beside it.",
        f"Validation: {get(s, 'validation_text', default='?')} ({get(s, 'validation_images', default='?')} digits, "
        f"noised once per seed). The course validates on MNIST's first 1,000 test digits.",
    ]
    if counts:
        notes.append(f"A net that predicts one class for every digit scores that class's share of the validation "
                     f"digits: here {min(counts) / sum(counts):.3f} to {max(counts) / sum(counts):.3f}; the "
                     f"course's 0.100 is such a score (the ten digits it shows are all predicted '7').")
    notes += outside_notes(s)
    notes.append("Not the course's, and why: PyTorch's Adam uses ε = 1e-8 where Keras uses 1e-7; the course's noise "
                 "and initial weights are unseeded draws (one run), ours come from each seed.")
    return notes
