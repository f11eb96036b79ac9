"""The claim of ``connlab depth``: its rules, the paired comparisons behind them, the verdict and its sentence.

He et al.'s degradation, tested on the per-seed final training losses of ``connlab.experiments.depth``'s
sweep: the deepest plain net trains to a higher loss than a shallower one, and residual connections
shrink that gap (``RULES``, Bonferroni-corrected over the shallower depths).  ``depth_evidence`` stores the
comparisons in summary.json; ``judge`` and ``plain_sentence`` only read them.
"""

from __future__ import annotations

from connlab.evidence import compare
from connlab.experiments.section import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, NOT_SUPPORTED, PARTLY, SUPPORTED,
                                         evidence_line, get, num, stored, weakest)
from connlab.experiments.sentence import Part, Wording, measured, sentence

KINDS = ("plain", "residual")
SHALLOW_LEARNS = 0.15      # precondition: the shallowest plain net's mean test error (chance is 0.9)
# The claim's rules, written once; d runs over the shallower depths, D is the deepest, and the
# intervals are Bonferroni-corrected over those depths (a 95 % family).
WHY_GAP_RULE = ("Why the residual verdict uses the gap rule: \"residual connections remove the degradation\" is a "
                "claim about the plain net's deep-vs-shallow gap, so it is tested as that gap shrinking; \"the deepest "
                "residual net trains at least as well as depth d\" is shown next to it, but an interval around 0 "
                "could not show \"at least as well\" (that needs a margin), and when it lies above 0 the verdict "
                "drops to partly supported.")
RULES = {
    "precondition": f"mean test error of the shallowest plain net ≤ {SHALLOW_LEARNS:.0%}",
    "degradation": "compare(train loss[plain, d], train loss[plain, D], better='higher'), paired by seed; "
                   "supported when it is for some d",
    "residual_gap": "compare(gap[plain], gap[residual], better='lower') with gap = train loss[D] − train loss[d] "
                    "per seed; supported when the residual gap is smaller at every d where the plain net degrades",
    "residual_at_least": "compare(train loss[residual, d], train loss[residual, D], better='lower'), paired by "
                         "seed: the deepest residual net trains at least as well as depth d (shown, not the verdict)",
}


def depth_evidence(results: dict, depths) -> dict:
    """The claim's comparisons (``RULES``) on the per-seed final training losses, as Evidence dicts:
    {"confidence", "degradation": {d: ...}, "residual_gap": {d: ...}, "residual_at_least": {d: ...}}."""
    deepest = max(depths)
    shallower = sorted(d for d in set(depths) if d != deepest)
    if not shallower:
        return {}
    confidence = 1 - 0.05 / len(shallower)
    loss = {k: {d: [r["final_train_loss"] for r in results[k][str(d)]["seeds"]] for d in depths} for k in KINDS}
    out = {"confidence": confidence, "degradation": {}, "residual_gap": {}, "residual_at_least": {}}
    for d in shallower:
        gap = {k: [deep - shallow for shallow, deep in zip(loss[k][d], loss[k][deepest])] for k in KINDS}
        out["degradation"][str(d)] = compare(loss["plain"][d], loss["plain"][deepest], better="higher",
                                             confidence=confidence).as_dict()
        out["residual_gap"][str(d)] = compare(gap["plain"], gap["residual"], better="lower",
                                              confidence=confidence).as_dict()
        out["residual_at_least"][str(d)] = compare(loss["residual"][d], loss["residual"][deepest], better="lower",
                                                   confidence=confidence).as_dict()
    return out


def judge(summary: dict) -> tuple[str, str]:
    """The claim's rules (``RULES``) on the stored comparisons.

    Precondition: the shallowest plain net learns (mean test error ≤ ``SHALLOW_LEARNS``); otherwise
    a difference between nets that have not started learning is no degradation: inconclusive.
    Degradation: supported when the deepest plain net trains to a higher loss than some shallower one.
    Residual: the verdict uses the gap rule — the residual net's deep-vs-shallow gap is smaller than
    the plain net's at each depth where the plain net degrades — because "removes the degradation"
    is a claim about the degradation, and an interval containing 0 in "the deepest residual net
    trains at least as well as depth d" would not show "at least as well" anyway (that needs a
    margin). That comparison is shown next to it; when it is contradicted (the deepest residual
    net trains measurably worse than a shallower one) the claim is only partly supported.
    """
    depths = sorted({str(d) for d in get(summary, "depths", default=[]) or []}, key=int)
    if len(depths) < 2:
        return NOT_MEASURED, "needs at least two depths"
    shallowest = depths[0]
    error = num(summary, "results", "plain", shallowest, "test_error")
    evidence = get(summary, "evidence")
    if error is None:
        return NOT_MEASURED, "the shallowest plain net was not measured"
    pre = (f"precondition ({RULES['precondition']}): plain depth {shallowest} test error {100 * error:.1f} % over "
           f"{get(summary, 'seeds', default=1)} seed(s)")
    if error > SHALLOW_LEARNS:
        return INCONCLUSIVE, (pre + " — not met: the nets did not learn at this budget, so neither degradation nor "
                                    "its removal can be judged (docs/evidence-budgets.md §3: a regime that learns)")
    if not isinstance(evidence, dict) or not isinstance(get(evidence, "degradation"), dict):
        return NOT_MEASURED, pre + " — met; " + evidence_line(None, RULES["degradation"], "")[1]
    lines, degraded = degradation_lines(evidence, depths)
    lines.insert(0, pre + " — met")
    degradation = SUPPORTED if degraded else NOT_SUPPORTED
    residual_said, gap_verdicts, at_least = residual_lines(evidence, depths, degraded)
    lines += residual_said
    residual = weakest(gap_verdicts) if gap_verdicts else NOT_SUPPORTED
    verdict = weakest([degradation, residual])
    if verdict == SUPPORTED and CONTRADICTED in at_least:
        verdict = PARTLY
        lines.append("partly: residual connections shrink the degradation, but the deepest residual net still "
                     "trains measurably worse than a shallower residual net")
    if not degraded:
        lines.append("the plain net does not degrade measurably at this budget")
    return verdict, " | ".join(lines)


def degradation_lines(evidence, depths: list[str]) -> tuple[list[str], list[str]]:
    """The degradation rule at each shallower depth: (its lines, the depths where the plain net degrades)."""
    lines, degraded = [], []
    for d in depths[:-1]:
        v, line = evidence_line(get(evidence, "degradation", d), RULES["degradation"],
                                f"plain depth {depths[-1]} − depth {d} train loss")
        lines.append("degradation: " + line)
        if v == SUPPORTED:
            degraded.append(d)
    return lines, degraded


def residual_lines(evidence, depths: list[str], degraded: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The residual rules at each shallower depth: (their lines, the gap verdicts where the plain net degrades,
    the "at least as well" verdicts, shown beside them)."""
    lines, gap_verdicts, at_least = [], [], []
    for d in depths[:-1]:
        v, line = evidence_line(get(evidence, "residual_gap", d), RULES["residual_gap"],
                                f"residual − plain gap (depth {d} → {depths[-1]})")
        lines.append("residual removes it: " + line)
        if d in degraded:
            gap_verdicts.append(v)
        v, line = evidence_line(get(evidence, "residual_at_least", d), RULES["residual_at_least"],
                                f"residual depth {depths[-1]} − depth {d} train loss")
        lines.append("shown: " + line)
        at_least.append(v)
    return lines, gap_verdicts, at_least


def plain_sentence(summary: dict, verdict: str) -> str:
    """The verdict of ``judge`` in one plain sentence (``connlab.experiments.sentence``), from the same numbers."""
    depths = sorted({str(d) for d in get(summary, "depths", default=[]) or []}, key=int)
    error = num(summary, "results", "plain", depths[0], "test_error") if depths else None
    if len(depths) < 2 or error is None:
        return "The claim needs plain and residual nets trained at two depths or more: not measured."
    if error > SHALLOW_LEARNS:
        return (f"The shallowest plain net did not learn (test error {100 * error:.1f} %, above "
                f"{100 * SHALLOW_LEARNS:.0f} %), so neither the degradation nor its removal can be judged: "
                "inconclusive at this budget.")
    deep = depths[-1]
    evidence = get(summary, "evidence")
    # the comparison said: the shallower depth where the plain net degrades most clearly (the lowest interval end)
    found = [(d, stored(evidence, "degradation", d)) for d in depths[:-1]]
    degraded = [(d, ev) for d, ev in found if ev is not None and ev.verdict == SUPPORTED]
    d, ev = max(degraded, key=lambda pair: pair[1].low) if degraded else found[0]
    parts = [measured(ev, Wording(f"the {deep}-block plain net ends with a training loss", f"higher than the "
                                  f"{d}-block one", f"lower than the {d}-block one",
                                  "whether the deeper plain net trains worse", spec=".3f"))]
    if not degraded and parts[0].verdict != NOT_MEASURED:
        return sentence(verdict, [Part(verdict, parts[0].clause + ", so at this budget the plain net shows no "
                                                                  "degradation for residual connections to remove")])
    parts.append(measured(stored(evidence, "residual_gap", d),
                          Wording(f"with residual connections that deep-vs-shallow gap is", "larger", "smaller",
                                  "whether residual connections shrink the gap", spec=".3f")))
    for dd in depths[:-1]:
        at_least = stored(evidence, "residual_at_least", dd)
        if at_least is not None and at_least.verdict == CONTRADICTED:
            parts.append(measured(at_least, Wording(f"the {deep}-block residual net still ends with a training "
                                                    f"loss", f"higher than the {dd}-block one",
                                                    f"lower than the {dd}-block one", "", spec=".3f"),
                                  headline=False))
            break
    return sentence(verdict, parts)
