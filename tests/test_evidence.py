"""connlab.evidence: calibration on synthetic data, directions, pairing, bootstrap, arguments."""

import math

import numpy as np
import pytest

from connlab.errors import UserError
from connlab.evidence import (CONTRADICTED, NOT_SUPPORTED, SUPPORTED, Evidence, at_least, bootstrap_compare,
                              compare, interval)

TRIALS = 2000


def rate(verdicts, which):
    return sum(v == which for v in verdicts) / len(verdicts)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_no_true_effect_is_rarely_supported(paired, n):
    # Nominal: a two-sided 95 % interval lies entirely below 0 in 2.5 % of trials.
    rng = np.random.default_rng(n + 10 * paired)
    verdicts = [compare(rng.normal(1.0, 0.1, n), rng.normal(1.0, 0.1, n), better="lower", paired=paired).verdict
                for _ in range(TRIALS)]
    assert rate(verdicts, SUPPORTED) <= 0.065
    assert rate(verdicts, CONTRADICTED) <= 0.065
    assert rate(verdicts, NOT_SUPPORTED) >= 0.87


def test_one_sigma_band_rule_is_what_this_replaces():
    # The old rule ("mean ± std bands do not overlap") with 2 seeds per side calls a
    # difference where there is none far more often than the t interval does.
    rng = np.random.default_rng(1)
    old = new = 0
    for _ in range(TRIALS):
        a, b = rng.normal(0, 1, 2), rng.normal(0, 1, 2)
        old += abs(a.mean() - b.mean()) > a.std(ddof=1) + b.std(ddof=1)
        new += compare(a, b, better="lower").verdict != NOT_SUPPORTED
    assert old / TRIALS > 0.12
    assert new / TRIALS <= 0.065


def test_clear_effect_is_supported_in_most_trials():
    # A 2 σ improvement of every seed's metric (σ = the spread of the per-seed difference),
    # five seeds: the paired t interval lies below 0 in 1833 of these 2000 trials (0.917; the
    # noncentral-t power of a one-sided 2.5 % test at d = 2, n = 5 is about 0.9).
    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(TRIALS):
        base = rng.normal(1.0, 1.0, 5)
        verdicts.append(compare(base, base + rng.normal(-2.0, 1.0, 5), better="lower").verdict)
    assert rate(verdicts, SUPPORTED) >= 0.80
    assert rate(verdicts, CONTRADICTED) == 0


def test_effect_in_the_wrong_direction_is_contradicted():
    base = [0.50, 0.52, 0.49, 0.51, 0.50]
    worse = [b + d for b, d in zip(base, [0.10, 0.12, 0.09, 0.11, 0.10])]
    ev = compare(base, worse, better="lower")
    assert ev.verdict == CONTRADICTED and ev.effect > 0 and ev.low > 0
    assert compare(base, worse, better="higher").verdict == SUPPORTED


def test_pairing_removes_the_shared_seed_variation():
    # Each seed moves both variants by the same large amount; the treatment is always 0.01 lower.
    seed_offsets = [0.0, 0.3, -0.2, 0.5, -0.4]
    deltas = [-0.010, -0.012, -0.008, -0.011, -0.009]
    base = [1 + s for s in seed_offsets]
    treat = [b + d for b, d in zip(base, deltas)]
    paired, unpaired = compare(base, treat), compare(base, treat, paired=False)
    assert paired.verdict == SUPPORTED and paired.method == "paired t over 5 seeds"
    assert unpaired.verdict == NOT_SUPPORTED and unpaired.method.startswith("Welch t")
    assert paired.effect == pytest.approx(unpaired.effect) == pytest.approx(-0.01)
    assert paired.high - paired.low < 0.01 < unpaired.high - unpaired.low


def test_numbers_match_a_hand_computed_paired_t_interval():
    from scipy import stats

    base, treat = [3.0, 4.0, 5.0], [2.0, 3.5, 3.0]
    d = np.array(treat) - np.array(base)       # -1, -0.5, -2
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    ev = compare(base, treat)
    assert ev.effect == pytest.approx(d.mean())
    assert (ev.low, ev.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert ev.relative == pytest.approx(d.mean() / 4.0)
    assert ev.n == 3 and ev.confidence == 0.95


def test_welch_matches_scipy():
    from scipy import stats

    a, b = [1.0, 1.4, 0.9, 1.2], [2.0, 1.1, 2.6, 1.9, 2.2, 1.7]
    ev = compare(a, b, paired=False, better="higher")
    res = stats.ttest_ind(b, a, equal_var=False)
    low, high = res.confidence_interval(0.95)
    assert (ev.low, ev.high) == pytest.approx((low, high))
    assert ev.n == 4


def test_one_seed_gives_no_interval_and_no_verdict():
    ev = compare([1.0], [0.5])
    assert ev.verdict == NOT_SUPPORTED and ev.method == "one seed: no interval"
    assert math.isnan(ev.low) and ev.effect == -0.5
    assert ev.as_dict()["low"] is None
    assert "no interval" in ev.text("loss")


def test_text_and_round_trip():
    ev = compare([1.0, 1.1, 0.9, 1.05, 0.95], [0.8, 0.9, 0.7, 0.86, 0.74])
    line = ev.text("BCE", ".3f")
    assert line.startswith("BCE effect −0.200") and "[95 % CI −" in line and "n = 5, paired t over 5 seeds" in line
    import json

    again = Evidence.from_dict(json.loads(json.dumps(ev.as_dict())))
    assert again == ev


def test_bootstrap_on_a_known_case():
    # Means of N(0, 1) vs N(0.5, 1), 400 items each: effect ≈ 0.5, standard error ≈ 0.071.
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 400), rng.normal(0.5, 1, 400)
    ev = bootstrap_compare(np.mean, a, b, better="higher", resamples=500)
    assert ev.effect == pytest.approx(b.mean() - a.mean())
    se = math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert ev.high - ev.low == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert ev.verdict == SUPPORTED
    same = bootstrap_compare(np.mean, a, rng.normal(0, 1, 400), better="higher", resamples=500)
    assert same.verdict == NOT_SUPPORTED
    import torch

    ev_t = bootstrap_compare(lambda x: x.mean().item(), torch.tensor(a), torch.tensor(b), better="higher",
                             resamples=200)
    assert ev_t.verdict == SUPPORTED


def test_interval_and_at_least():
    mean, low, high = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low < 2.0 < high
    assert at_least([1.4, 1.6, 1.5, 1.55, 1.45], 1.0, what="test digits").verdict == SUPPORTED
    assert at_least([0.9, 1.1, 1.0, 1.05, 0.95], 1.0).verdict == NOT_SUPPORTED
    below = at_least([0.5, 0.6, 0.55, 0.52], 1.0)
    assert below.verdict == CONTRADICTED and below.effect == pytest.approx(0.5425 - 1.0)


@pytest.mark.parametrize("kwargs, words", [
    (dict(baseline=[1, 2], treatment=[1, 2, 3]), "as many"),
    (dict(baseline=[1, 2], treatment=[1, 2], better="smaller"), "better"),
    (dict(baseline=[1, 2], treatment=[1, 2], confidence=1.0), "confidence"),
    (dict(baseline=[], treatment=[]), "empty"),
    (dict(baseline=[1, float("nan")], treatment=[1, 2]), "non-finite"),
])
def test_impossible_arguments_are_user_errors(kwargs, words):
    with pytest.raises(UserError, match=words):
        compare(**kwargs)


def test_wider_confidence_gives_a_wider_interval_and_can_change_the_verdict():
    base, treat = [1.0, 1.1, 0.9, 1.05, 0.95], [0.93, 1.05, 0.8, 1.0, 0.9]
    at_95, at_999 = compare(base, treat, confidence=0.95), compare(base, treat, confidence=0.999)
    assert at_999.low < at_95.low and at_999.high > at_95.high
    assert at_95.verdict == SUPPORTED and at_999.verdict == NOT_SUPPORTED
    assert "[99.9 % CI" in at_999.text("loss")


def test_zero_baseline_has_no_relative_effect_and_items_are_named():
    ev = compare([0.0, 0.0, 0.0], [0.1, 0.2, 0.15], better="higher", what="test digits")
    assert ev.relative is None and "(" not in ev.text("x").split("[")[0]
    assert ev.method == "paired t over 3 test digits"
    assert compare([1.0], [2.0], what="test digits").method == "one test digit: no interval"
    assert at_least([2.0], 1.0, what="test digits").method == "one test digit: no interval"


def test_bootstrap_refuses_too_few_items_or_resamples():
    with pytest.raises(UserError, match="at least 2 items"):
        bootstrap_compare(np.mean, np.array([1.0]), np.array([1.0, 2.0]), better="lower")
    with pytest.raises(UserError, match="resamples"):
        bootstrap_compare(np.mean, np.array([1.0, 2.0]), np.array([1.0, 2.0]), better="lower", resamples=5)


def test_reproduction_prediction_interval_by_hand():
    from scipy import stats

    from connlab.evidence import NOT_REPRODUCED, REPRODUCED, Reproduction, reproduction

    values = [0.160, 0.165, 0.158, 0.170, 0.162]
    r = reproduction(0.1652, values)
    m = sum(values) / 5
    s = (sum((v - m) ** 2 for v in values) / 4) ** 0.5
    half = stats.t.ppf(0.975, 4) * s * (1 + 1 / 5) ** 0.5
    assert r.low == pytest.approx(m - half) and r.high == pytest.approx(m + half)
    assert r.verdict == REPRODUCED and r.gap == 0.0
    far = reproduction(0.20, values)
    assert far.verdict == NOT_REPRODUCED and far.gap == pytest.approx(0.20 - (m + half))
    assert "above" in far.text()
    assert Reproduction.from_dict(far.as_dict()) == far
    # one seed: no interval, never "reproduced"
    assert reproduction(0.16, [0.16]).verdict == NOT_REPRODUCED


def test_reproduction_calibration_one_run_inside_95_percent():
    """A published run drawn from the same distribution lies inside the prediction interval ~95 % of the time."""
    import random

    from connlab.evidence import REPRODUCED, reproduction

    rng = random.Random(0)
    hits = sum(reproduction(rng.gauss(0, 1), [rng.gauss(0, 1) for _ in range(5)]).verdict == REPRODUCED
               for _ in range(2000))
    assert 0.93 <= hits / 2000 <= 0.97
