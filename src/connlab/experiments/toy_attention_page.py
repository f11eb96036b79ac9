"""The report's section of ``connlab attention --preset course`` (``connlab.experiments.toy_attention``): the toy
head's loss beside the course's and the floor ln 2 / 5, the three claims and their rules, the networks and the
sweep over head sizes.
"""

from __future__ import annotations

import math

from connlab.evidence import Reproduction
from connlab.experiments.section import (NOT_MEASURED, PARTLY, SUPPORTED, Run, Section, Table, combine, effect_of,
                                         evidence_line, fmt, get, num, stored, stored_reproduction, with_figures)
from connlab.experiments.sentence import Part, Wording, measured, sentence
from connlab.experiments.toy_attention import FIGURES
from connlab.models.toy_attention import SENTENCES


def _mean(rows, key):
    values = [r.get(key) for r in rows or [] if isinstance(r, dict) and isinstance(r.get(key), (int, float))]
    return sum(values) / len(values) if values else None


def _generating(rows) -> int:
    """Seeds whose greedy generation from `<Start> man` and `<Start> woman` gives the two corpus sentences."""
    return sum(1 for r in rows if isinstance(r, dict) and sorted(r.get("generated") or []) == sorted(SENTENCES))


def section(run: Run) -> Section:
    s = run.summary
    floor = num(s, "loss_floor")
    head = get(s, "seeds", default=[]) or []
    claims = get(s, "claims", default={}) or {}
    repro = get(claims, "reproduction")
    repro_text = Reproduction.from_dict(repro).text() if isinstance(repro, dict) else "not measured"
    nets, sweep = network_rows(s), sweep_rows(s)
    (v_att, line_att), (v_floor, line_floor), (v_gen, line_gen) = claim_lines(claims)
    verdict = combine(v_att, v_floor, v_gen)
    if verdict == SUPPORTED and isinstance(repro, dict) and repro.get("verdict") != "reproduced":
        verdict = PARTLY
    if not head:
        verdict = NOT_MEASURED
    notes = [line_att, line_floor, line_gen,
             "head → block → stack: the TransformerBlock rows are the slides' next step (several heads, layer norm, "
             "an MLP, residuals; stack them); the same block runs the reverse/sort task of `connlab attention`.",
             "predictions are softmax(z) of the sigmoid's input z: Keras' sparse cross-entropy on a sigmoid "
             "output uses z as logits (the sigmoid caches it), so that is the distribution the course trains"]
    said = plain_sentence(claims, verdict, bool(head))
    text = (f"the head's loss {fmt(_mean(head, 'final_loss'))} vs the floor {fmt(floor)}; {repro_text}; "
            f"attention: {v_att}; the unmasked head below the floor: {v_floor}; it fails to generate: {v_gen}")
    return with_figures(Section(
        "attention", "The toy attention head (the course's exercise): who ordered, and why GPT masks",
        "Attention lets `the` see who ordered: the head predicts chicken after the man and beef after the woman, "
        "which the skip-add path alone cannot; without the causal mask the head reads the answer — its loss falls "
        "below the floor ln 2 / 5 — and fails when it has to generate one token at a time.",
        verdict, text, tables=[Table(["quantity", "value"], quantity_rows(s, repro_text)),
                               Table(nets[0], nets[1:], "networks, mean over seeds"),
                               Table(sweep[0], sweep[1:], "the course's \"try H = 10, 20, 40\"")],
        notes=notes, rule="attention: paired t over seeds, head vs no attention; mask: one-sample t of floor − loss, "
                          "paired t of generation accuracy; the course's loss in our 95 % prediction interval",
        effect=effect_of(get(claims, "attention"), "P(object)", spec=".3f"), sentence=said), run, CAPTIONS)


def quantity_rows(s: dict, repro_text: str) -> list[list[str]]:
    """The first table: the head's loss beside the course's and the floor, the reproduction, size and time."""
    head = get(s, "seeds", default=[]) or []
    return [["final loss (mean over seeds)", fmt(_mean(head, "final_loss"))],
            ["the course's final loss (one run)", fmt(num(s, "course_final_loss"))],
            ["reproduction (95 % prediction interval for one run)", repro_text],
            ["floor for any causal model, ln 2 / 5", fmt(num(s, "loss_floor"))],
            ["P(right object | `the`), mean", fmt(_mean(head, "p_object_at_the"), ".3f")],
            ["parameters", str(get(s, "params", default="?"))], ["seeds", str(len(head))],
            ["training seconds (all networks)", fmt(num(s, "train_seconds"), ".1f")]]


def network_rows(s: dict) -> list[list[str]]:
    """Header and one row per network: each head variant, then each stack of TransformerBlocks."""
    nets = [["network", "final loss", "loss from the prefix only (generation)", "P(right object | `the`)",
             "same, from the prefix", "seeds with P > ¾", "seeds generating both sentences", "generated (first seed)"]]
    for name, v in (get(s, "variants", default={}) or {}).items():
        r = v.get("seeds", []) if isinstance(v, dict) else []
        first = r[0].get("generated", []) if r and isinstance(r[0], dict) else []
        learned = sum(1 for x in r if isinstance(x, dict) and (x.get("p_object_at_the") or 0) > 0.75)
        nets.append([name, fmt(_mean(r, "final_loss")), fmt(_mean(r, "prefix_loss")),
                     fmt(_mean(r, "p_object_at_the"), ".3f"), fmt(_mean(r, "p_object_at_the_from_prefix"), ".3f"),
                     f"{learned} of {len(r)}", f"{_generating(r)} of {len(r)}", " / ".join(first)])
    for name, b in (get(s, "blocks", default={}) or {}).items():
        r = b.get("seeds", []) if isinstance(b, dict) else []
        nets.append([f"TransformerBlock ×{get(b, 'config', 'depth', default='?')} (dim 16, 2 heads, "
                     f"{get(b, 'params', default='?')} params)", fmt(_mean(r, "final_loss")), "= final (causal)",
                     fmt(_mean(r, "p_object_at_the"), ".3f"), "= (causal)",
                     f"{sum(1 for x in r if (x.get('p_object_at_the') or 0) > 0.75)} of {len(r)}", "", ""])
    return nets


def sweep_rows(s: dict) -> list[list[str]]:
    """Header and one row per head size of the sweep: final loss and P(right object | `the`), with intervals."""
    sweep = [["H", "final loss (mean, 95 % CI)", "P(right object | `the`) (mean, 95 % CI)"]]
    for h, v in (get(s, "sweep", default={}) or {}).items():
        lo = get(v, "final_loss", default=[None] * 3)
        po = get(v, "p_object_at_the", default=[None] * 3)
        sweep.append([h, f"{fmt(lo[0])} [{fmt(lo[1])}, {fmt(lo[2])}]",
                      f"{fmt(po[0], '.3f')} [{fmt(po[1], '.3f')}, {fmt(po[2], '.3f')}]"])
    return sweep


def claim_lines(claims: dict) -> list[tuple[str, str]]:
    """(verdict, line) of the three comparisons: attention, the unmasked head below the floor, and generating."""
    return [evidence_line(get(claims, "attention"), "P(right object | `the`): head − no attention, "
                          "paired by seed, 95 % CI above 0", "P(object)", spec=".3f"),
            evidence_line(get(claims, "unmasked_below_floor"), "unmasked: floor − final loss, "
                          "95 % CI above 0", "floor − loss"),
            evidence_line(get(claims, "unmasked_generation"), "the loss when each position sees its "
                          "prefix only (as in generation): unmasked − masked, paired, 95 % CI above 0", "loss")]


CAPTIONS = dict(zip(FIGURES, (
    "The toy head's attention weights and predictions: after `the`, the head looks back at who ordered.",
    "Training loss per epoch, each network and seed, with the floor ln 2 / 5 that no causal model can beat.",
    "The head without the causal mask: its loss falls below the floor because it reads the answer, and it "
    "fails when it has to generate one token at a time.")))


def plain_sentence(claims: dict, verdict: str, trained: bool) -> str:
    """The verdict in one plain sentence (``connlab.experiments.sentence``), from the stored comparisons."""
    if not trained:
        return "The toy head was not trained in this run: not measured."
    parts = [measured(stored(claims, "attention"), Wording(
                 "with attention, the head gives the right object after `the` a probability", "higher than the "
                 "skip-add path alone", "lower than the skip-add path alone", "whether attention finds who ordered",
                 spec=".3f")),
             measured(stored(claims, "unmasked_below_floor"), Wording(
                 "without the causal mask its loss ends", "below the floor ln 2 / 5", "above the floor ln 2 / 5",
                 "whether the unmasked head beats the floor", spec=".3f")),
             measured(stored(claims, "unmasked_generation"), Wording(
                 "generating one token at a time, the unmasked head's loss is", "higher than the masked "
                 "head's", "lower than the masked head's", "whether the unmasked head fails to generate",
                 spec=".3f"))]
    rep = stored_reproduction(get(claims, "reproduction"))
    if rep is not None and rep.verdict != "reproduced" and verdict == PARTLY and not math.isnan(rep.low):
        parts.append(Part(rep.verdict, f"the course's final loss {rep.published:.4f} lies outside our interval "
                                       f"for one run ({rep.low:.4f} to {rep.high:.4f}, {rep.n} seeds)"))
    return sentence(verdict, parts)


def section_or_none(run: Run):
    """The toy section when the run is the toy task, else None."""
    task = get(run.summary, "task", default=None) or get(run.config, "task", default=None)
    return section(run) if task == "toy" else None
