"""Effect sizes, confidence intervals and verdicts: the rule behind every comparative claim.

A claim of the lecture ("the U-Net skip lowers the reconstruction loss") becomes a comparison
of a *baseline* and a *treatment* measured over seeds (or test items). ``compare`` returns the
effect — the mean difference treatment − baseline — with its confidence interval and a
verdict that is never stronger than the interval allows:

    SUPPORTED       the interval lies entirely on the claimed side of 0
    CONTRADICTED    the interval lies entirely on the other side
    NOT_SUPPORTED   the interval contains 0: "not supported at this budget"

Why intervals and not "mean ± std bands do not overlap": with 2 seeds per side that rule
calls a difference where there is none in about one comparison in five; a 95 % t interval
does so in at most 2.5 % per claimed direction (``tests/test_evidence.py`` checks this).

Intervals:
    paired t     samples pair by index (seed i of the baseline and seed i of the treatment saw
                 the same data order and noise); the t interval of the per-pair differences.
    Welch t      independent samples with unequal variances (Welch–Satterthwaite dof).
    bootstrap    percentile interval of a statistic of two sets of items (e.g. the Fréchet
                 distance of two sets of samples), resampling each set with replacement.
    one-sample   ``at_least``: the t interval of one sample's mean against a threshold
                 (a per-item ratio that should exceed 1).

scipy (t quantiles) is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from connlab.errors import UserError

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported at this budget"
CONTRADICTED = "contradicted"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, CONTRADICTED)
BETTER = ("lower", "higher")
RELATIVE_BASELINE = 1.0   # a relative effect is shown only when |mean(baseline)| ≥ this × |effect|


@dataclass(frozen=True)
class Evidence:
    """One comparison: the effect (treatment − baseline), its interval and the verdict."""

    effect: float            # mean difference treatment − baseline (paired: mean of per-pair differences)
    relative: float | None   # effect / |mean(baseline)|; None when that mean is 0 (or there is no baseline)
    low: float               # confidence interval of ``effect`` (nan when n < 2)
    high: float
    n: int                   # pairs, or the smaller sample for unpaired / bootstrap comparisons
    confidence: float
    method: str              # "paired t over 5 seeds", "Welch t", "bootstrap over 200 samples", ...
    better: str              # "lower" | "higher": the side of 0 the claim says the effect lies on
    verdict: str             # SUPPORTED | NOT_SUPPORTED | CONTRADICTED

    def text(self, metric: str, spec: str = ".4f", unit: str = "") -> str:
        """One line for the page: ``PSNR effect +1.2300 dB [95 % CI +0.9000, +1.5600], n = 5, paired t over 5 seeds``."""
        def num(v: float) -> str:
            return "nan" if math.isnan(v) else format(v, "+" + spec.lstrip("+")).replace("-", "−")

        u = f" {unit}" if unit else ""
        pct = round(100 * self.confidence, 6)
        pct_text = f"{pct:g}"
        ci = (f"[{pct_text} % CI {num(self.low)}, {num(self.high)}]" if not math.isnan(self.low)
              else "[no interval]")
        rel = f" ({100 * self.relative:+.1f} %)".replace("-", "−") if self.relative_is_meaningful() else ""
        name = f"{metric} " if metric else ""
        return f"{name}effect {num(self.effect)}{u}{rel} {ci}, n = {self.n}, {self.method}"

    def relative_is_meaningful(self) -> bool:
        """Whether the effect may be said as a share of the baseline: only when the baseline's mean lies well away
        from 0, at least ``RELATIVE_BASELINE`` times as far from it as the effect is (|relative| ≤ 1 /
        ``RELATIVE_BASELINE``). Against a mean near 0 (a gap, a difference of losses) a percentage measures how
        near 0 the baseline happens to be, not the effect ("−175 %"): the effect is said as a difference only."""
        return (self.relative is not None and math.isfinite(self.relative)
                and abs(self.relative) <= 1 / RELATIVE_BASELINE)

    def as_dict(self) -> dict:
        """JSON-able (nan becomes None, so summary.json stays strict JSON)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Evidence:
        values = dict(d)
        for key in ("effect", "low", "high"):
            values[key] = float("nan") if values.get(key) is None else float(values[key])
        return cls(**values)


def _check(better: str, confidence: float) -> None:
    if better not in BETTER:
        raise UserError(f"better must be 'lower' or 'higher', got {better!r}")
    if not 0 < confidence < 1:
        raise UserError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _floats(values, name: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not out:
        raise UserError(f"{name} is empty: give at least one value")
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise UserError(f"{name} holds a non-finite value ({bad[0]}); a diverged run cannot be compared")
    return out


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _var(xs: Sequence[float]) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def decide(low: float, high: float, better: str) -> str:
    """The verdict of an interval for ``effect`` when the claim says the effect is ``better`` ("lower": < 0)."""
    if math.isnan(low) or math.isnan(high):
        return NOT_SUPPORTED
    if better == "lower":
        return SUPPORTED if high < 0 else CONTRADICTED if low > 0 else NOT_SUPPORTED
    return SUPPORTED if low > 0 else CONTRADICTED if high < 0 else NOT_SUPPORTED


def _one(what: str) -> str:
    """The method text without an interval: "one seed: no interval"."""
    return f"one {what[:-1] if what.endswith('s') else what}: no interval"


def _relative(effect: float, base_mean: float) -> float | None:
    return None if base_mean == 0 else effect / abs(base_mean)


def interval(values, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of one sample and its two-sided t interval (nan bounds when n < 2)."""
    _check("lower", confidence)
    xs = _floats(values, "values")
    m = _mean(xs)
    if len(xs) < 2:
        return m, float("nan"), float("nan")
    # lazy: scipy.stats costs ~1.5 s
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, len(xs) - 1)) * math.sqrt(_var(xs) / len(xs))
    return m, m - half, m + half


def compare(baseline, treatment, *, better: str = "lower", paired: bool = True,
            confidence: float = 0.95, what: str = "seeds") -> Evidence:
    """Effect of the treatment over the baseline with a t interval and the verdict.

    ``baseline`` and ``treatment`` are one number per seed (or per test item). ``paired``: the
    i-th values of both come from the same seed (same data order and noise), so the interval is
    the one-sample t interval of the differences; otherwise Welch's t interval.
    ``better``: "lower" when the claim says the treatment lowers the metric (a loss), "higher"
    when it raises it (PSNR, accuracy). ``what`` names the pairs in ``method`` ("test digits").
    """
    _check(better, confidence)
    base, treat = _floats(baseline, "baseline"), _floats(treatment, "treatment")
    base_mean = _mean(base)
    if paired:
        if len(base) != len(treat):
            raise UserError(f"paired comparison needs as many treatment values as baseline values, "
                            f"got {len(treat)} and {len(base)}")
        diffs = [t - b for b, t in zip(base, treat)]
        n = len(diffs)
        effect, low, high = interval(diffs, confidence=confidence)
        method = _one(what) if n < 2 else f"paired t over {n} {what}"
    else:
        n = min(len(base), len(treat))
        effect = _mean(treat) - base_mean
        if n < 2:
            low = high = float("nan")
            method = _one(what)
        else:
            # lazy: scipy.stats costs ~1.5 s
            from scipy import stats

            vb, vt = _var(base) / len(base), _var(treat) / len(treat)
            se2 = vb + vt
            if se2 == 0:
                dof = len(base) + len(treat) - 2
            else:
                dof = se2 ** 2 / (vb ** 2 / (len(base) - 1) + vt ** 2 / (len(treat) - 1))
            half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(se2)
            low, high = effect - half, effect + half
            method = f"Welch t, {len(base)} vs {len(treat)} {what}"
    return Evidence(effect, _relative(effect, base_mean), low, high, n, confidence, method, better,
                    decide(low, high, better))


def bootstrap_compare(statistic: Callable, baseline_items, treatment_items, *, better: str,
                      confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> Evidence:
    """Effect statistic(treatment) − statistic(baseline) with a percentile bootstrap interval.

    ``statistic`` maps a set of items (a tensor or array whose first axis indexes items, e.g.
    the classifier features of N samples) to one number — the Fréchet distance to the test
    set, say. Each resample draws both sets with replacement, independently (the two sets are
    not paired). The point estimate is the statistic on the full sets.
    """
    _check(better, confidence)
    if not isinstance(resamples, int) or resamples < 10:
        raise UserError(f"resamples must be an integer >= 10, got {resamples!r}")

    nb, nt = len(baseline_items), len(treatment_items)
    if nb < 2 or nt < 2:
        raise UserError(f"bootstrap needs at least 2 items per side, got {nb} and {nt}")
    base_value, treat_value = float(statistic(baseline_items)), float(statistic(treatment_items))
    effect = treat_value - base_value
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        ib, it = rng.integers(0, nb, nb), rng.integers(0, nt, nt)
        diffs.append(float(statistic(_take(treatment_items, it))) - float(statistic(_take(baseline_items, ib))))
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(np.asarray(diffs), [tail, 1 - tail]))
    return Evidence(effect, _relative(effect, base_value), low, high, min(nb, nt), confidence,
                    f"bootstrap over {nb} vs {nt} items, {resamples} resamples", better, decide(low, high, better))


def _take(items, index):
    """Rows ``index`` of a tensor, an array or a list."""
    if isinstance(items, torch.Tensor):
        return items[torch.as_tensor(index, device=items.device)]
    if hasattr(items, "shape"):
        return items[index]
    return [items[i] for i in index]


def at_least(values, threshold: float, *, confidence: float = 0.95, what: str = "") -> Evidence:
    """One sample against a threshold: SUPPORTED when its mean's t interval lies above ``threshold``.

    The effect is mean − threshold (and its interval), so ``verdict`` reads like ``compare``'s with
    better="higher"; ``relative`` is the effect / |threshold|. ``what`` names the items
    ("test digits") in ``method``.
    """
    _check("higher", confidence)
    xs = _floats(values, "values")
    mean, low, high = interval(xs, confidence=confidence)
    items = what or "items"
    method = (_one(items) if len(xs) < 2
              else f"one-sample t over {len(xs)} {items}, against {threshold:g}")
    low_e, high_e = low - threshold, high - threshold
    return Evidence(mean - threshold, _relative(mean - threshold, threshold), low_e, high_e, len(xs), confidence,
                    method, "higher", decide(low_e, high_e, "higher"))


REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"


@dataclass(frozen=True)
class Reproduction:
    """A published single run against our runs of the same protocol.

    The course reports one run; we run ``n`` seeds. The published figure is *reproduced* when it lies
    inside the 95 % prediction interval for one more run, mean ± t(n−1) · s · √(1 + 1/n): the spread of
    one run, not of the mean, since the course's figure is one run too.
    """

    published: float
    mean: float
    low: float               # the prediction interval for one run (nan when n < 2)
    high: float
    n: int
    confidence: float
    verdict: str             # REPRODUCED | NOT_REPRODUCED (also when n < 2: no interval, nothing shown)
    gap: float               # published − the nearer bound when outside, 0 inside (nan when n < 2)

    def text(self, spec: str = ".4f") -> str:
        """``course 0.1652; ours 0.1641 (one run: 0.1590 to 0.1692, n = 5): reproduced``."""
        f = lambda v: format(v, spec)  # noqa: E731
        if math.isnan(self.low):
            return f"course {f(self.published)}; ours {f(self.mean)} (n = {self.n}: no interval): {self.verdict}"
        gap = "" if self.verdict == REPRODUCED else f", {f(abs(self.gap))} {'above' if self.gap > 0 else 'below'}"
        return (f"course {f(self.published)}; ours {f(self.mean)} (one run: {f(self.low)} to {f(self.high)}, "
                f"n = {self.n}): {self.verdict}{gap}")

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Reproduction:
        values = dict(d)
        for key in ("low", "high", "gap"):
            values[key] = float("nan") if values.get(key) is None else float(values[key])
        return cls(**values)


def reproduction(published: float, values, *, confidence: float = 0.95) -> Reproduction:
    """Does one published run lie where one more of our runs would? (the prediction interval above)"""
    _check("lower", confidence)
    xs = _floats(values, "values")
    m = _mean(xs)
    if len(xs) < 2:
        nan = float("nan")
        return Reproduction(float(published), m, nan, nan, len(xs), confidence, NOT_REPRODUCED, nan)
    # lazy: scipy.stats costs ~1.5 s
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, len(xs) - 1)) * math.sqrt(_var(xs) * (1 + 1 / len(xs)))
    low, high = m - half, m + half
    inside = low <= published <= high
    gap = 0.0 if inside else (published - high if published > high else published - low)
    return Reproduction(float(published), m, low, high, len(xs), confidence,
                        REPRODUCED if inside else NOT_REPRODUCED, gap)
