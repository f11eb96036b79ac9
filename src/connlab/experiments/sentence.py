"""A verdict in one plain sentence: what the numbers say, in words a student can repeat.

Each experiment's ``section`` states its claim in words — a ``Wording`` per comparison: what is
compared, the word for either direction of the effect, its unit — and this module, the one place
that does it, turns the stored evidence into the sentence the page opens the verdict box with:

    With the skips, the reconstructions are 3.30 dB sharper (95 % interval 2.90 to 3.80 dB, 5 seeds): supported.

The size, the interval, n and the verdict word always come from the stored numbers
(``connlab.evidence.Evidence``); a part that falls short says so, with the budget that would settle
it where the evidence lets us estimate one; a run folder written before the numbers were stored
reads "not measured". The rule and every number stay in the collapsible block beneath.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from connlab.evidence import CONTRADICTED, NOT_SUPPORTED, SUPPORTED
from connlab.experiments.section import INCONCLUSIVE, NOT_MEASURED, PARTLY

OLD_FOLDER = "this run folder was written before the intervals were stored: rerun the experiment to measure it"
MAX_SEEDS = 1000                       # beyond this, "more than 1,000 seeds would settle it"

TAILS = {  # how each verdict ends the sentence
    SUPPORTED: "supported",
    NOT_SUPPORTED: "not supported at this budget",
    CONTRADICTED: "contradicted (the effect runs the other way)",
    PARTLY: "partly supported",
    NOT_MEASURED: "not measured",
    INCONCLUSIVE: INCONCLUSIVE,
}


@dataclass(frozen=True)
class Wording:
    """How one comparison (treatment − baseline) reads in plain words; the numbers come from the evidence.

    The clause reads ``{subject} {size}{unit} {up | down} ({interval}, {n} {what})``: ``up`` is said of a
    positive effect, ``down`` of a negative one, and the interval is turned to match the word.
    """

    subject: str          # "with the skips, the reconstructions are"
    up: str               # "sharper"
    down: str             # "blurrier"
    topic: str            # what was asked, said when it was not measured: "whether the skips sharpen ..."
    unit: str = ""        # " dB", " percentage points" (with its leading space)
    spec: str = ".2f"
    scale: float = 1.0    # 100: a fraction said in percentage points
    what: str = "seeds"   # what n counts


@dataclass(frozen=True)
class Part:
    """One part of a claim, said in words: its verdict, its numbers, and what would settle it if it falls short."""

    verdict: str
    clause: str           # starts lower case; the sentence capitalises it
    settle: str = ""      # "about 12 seeds would settle it"
    headline: bool = True  # False: said only when it falls short (a check the claim needs, not its point)


def count(n: int, what: str) -> str:
    """``5 seeds``, ``1 seed``."""
    return f"{n:,} {what[:-1] if n == 1 and what.endswith('s') else what}"


def number(value: float, spec: str) -> str:
    return format(value, spec).replace("-", "−")


def measured(ev, wording: Wording, *, headline: bool = True) -> Part:
    """The part a stored comparison (``connlab.evidence.Evidence`` or None) makes, in ``wording``'s words."""
    if ev is None:
        return Part(NOT_MEASURED, wording.topic, OLD_FOLDER, headline=headline)
    w = wording
    sign = 1.0 if ev.effect >= 0 else -1.0
    size = number(abs(ev.effect) * w.scale, w.spec)
    n = count(ev.n, w.what)
    if math.isnan(ev.low) or math.isnan(ev.high):
        interval = f"{n}, no interval"
    else:
        lo, hi = sorted((sign * ev.low * w.scale, sign * ev.high * w.scale))
        conf = f"{round(100 * ev.confidence, 6):g}"
        interval = f"{conf} % interval {number(lo, w.spec)} to {number(hi, w.spec)}{w.unit}, {n}"
    clause = f"{w.subject} {size}{w.unit} {w.up if sign > 0 else w.down} ({interval})"
    return Part(ev.verdict, clause, settle_text(ev, w.what), headline)


def settle_text(ev, what: str = "seeds") -> str:
    """Why a comparison is not supported, and what budget would settle it if its effect and spread stay as
    measured (the t interval effect ± t(n−1)·s/√n must exclude 0); "" when it is not "not supported"."""
    if ev is None or ev.verdict != NOT_SUPPORTED:
        return ""
    if ev.n < 2 or math.isnan(ev.low):
        return f"one {what[:-1] if what.endswith('s') else what} gives no interval: rerun with --seeds 5 or more"
    why = "the interval still includes no difference"
    if not ev.method.startswith(("paired t", "one-sample t", "Welch t")):
        return why
    from scipy import stats

    t = lambda m: float(stats.t.ppf(0.5 + ev.confidence / 2, m - 1))  # noqa: E731
    s = (ev.high - ev.low) / 2 * math.sqrt(ev.n) / t(ev.n)
    if ev.effect == 0 or s == 0:
        return why
    first = next((m for m in range(ev.n + 1, MAX_SEEDS + 1) if abs(ev.effect) > t(m) * s / math.sqrt(m)), None)
    if first is None:
        return f"{why}, and at this effect and spread more than {MAX_SEEDS:,} {what} would be needed"
    return f"{why}; at this effect and spread, about {count(first, what)} would settle it"


def tail(verdict: str) -> str:
    return TAILS.get(verdict, verdict)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(clauses: list[str]) -> str:
    if len(clauses) <= 1:
        return "".join(clauses)
    return ", ".join(clauses[:-1]) + ", and " + clauses[-1]


def _short(p: Part) -> str:
    """A part that falls short, with its own verdict and what would settle it."""
    return f"{p.clause} — {tail(p.verdict)}" + (f"; {p.settle}" if p.settle else "")


def sentence(verdict: str, parts: list[Part]) -> str:
    """The claim's verdict in one sentence: its parts' numbers, then the verdict word.

    Parts that agree are joined ("A, and B: supported."); where some hold and some fall short, the ones
    that hold come first and each that falls short says its own verdict (where it differs from the claim's)
    and what would settle it ("A; but B — not supported at this budget; about 12 seeds would settle it:
    partly supported."). A part that is not a headline is said only when it falls short.
    """
    shown = [p for p in parts if p.headline or p.verdict not in (SUPPORTED, NOT_MEASURED)] or list(parts)
    if not shown:
        return f"{_cap(tail(verdict))}."
    held = [p for p in shown if p.verdict == SUPPORTED]
    short = [p for p in shown if p.verdict != SUPPORTED]
    if not held or not short:
        agree = len({p.verdict for p in shown}) == 1 and shown[0].verdict == verdict
        body = _join([p.clause for p in shown] if agree or not short else [_short(p) for p in shown])
        settle = "; ".join(dict.fromkeys(p.settle for p in short if p.settle)) if agree else ""
        return f"{_cap(body)}: {tail(verdict)}" + (f" — {settle}" if settle else "") + "."
    if all(p.verdict == verdict for p in short):   # the claim's verdict is theirs: said once, at the end
        settle = "; ".join(dict.fromkeys(p.settle for p in short if p.settle))
        return (f"{_cap(_join([p.clause for p in held]))}; but {_join([p.clause for p in short])}: {tail(verdict)}"
                + (f" — {settle}" if settle else "") + ".")
    return f"{_cap(_join([p.clause for p in held]))}; but {_join([_short(p) for p in short])}: {tail(verdict)}."
