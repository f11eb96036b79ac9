"""Each claim's plain sentence (``connlab.experiments.sentence``), built from numbers made up here.

The expected words are not copied from the implementation: each test computes the effect, its
interval and n from the numbers it made (numpy / scipy), and checks that the sentence states them,
turned the way its direction word says, and ends with the verdict; a part that falls short names
itself and the budget that would settle it, computed here independently.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from connlab.evidence import CONTRADICTED, NOT_SUPPORTED, SUPPORTED, Evidence, compare
from connlab.experiments import autoencoder
from connlab.experiments.section import NOT_MEASURED, PARTLY, Run
from connlab.experiments.sentence import Wording, measured, sentence

BASE = [20.0, 21.0, 22.0, 20.5, 21.5]
SAYS = Wording("with the skips, the reconstructions are", "sharper", "blurrier",
               "whether the skips sharpen the reconstructions", " dB")


def t_interval(diffs):
    d = np.asarray(diffs, dtype=float)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def said(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def numbers_in(text: str) -> list[str]:
    return re.findall(r"−?\d+\.\d+", text)


@pytest.mark.parametrize("shift, verdict, word", [
    ([3.3, 3.5, 3.0, 3.4, 3.1], SUPPORTED, "sharper"),
    ([0.3, -0.5, 0.6, 0.4, -0.1], NOT_SUPPORTED, "sharper"),
    ([-1.0, -1.2, -0.9, -1.1, -1.3], CONTRADICTED, "blurrier"),
])
def test_one_comparison_says_its_size_interval_n_and_verdict(shift, verdict, word):
    treat = [b + s for b, s in zip(BASE, shift)]
    effect, low, high = t_interval(shift)
    ev = compare(BASE, treat, better="higher")
    assert ev.verdict == verdict
    text = sentence(ev.verdict, [measured(ev, SAYS)])
    # the size in the direction of its word, then the interval turned the same way
    sign = 1 if effect >= 0 else -1
    lo, hi = sorted((sign * low, sign * high))
    assert f"{said(abs(effect))} dB {word}" in text
    assert f"95 % interval {said(lo)} to {said(hi)} dB, 5 seeds" in text
    assert text.startswith("With the skips") and text.endswith(".")
    assert f": {verdict}" in text and "rule" not in text and "compare(" not in text
    if verdict == NOT_SUPPORTED:   # it says what would settle it: the first n whose t interval excludes 0
        s = (high - low) / 2 * math.sqrt(5) / stats.t.ppf(0.975, 4)
        first = next(m for m in range(6, 1001) if abs(effect) > stats.t.ppf(0.975, m - 1) * s / math.sqrt(m))
        assert f"about {first} seeds would settle it" in text


def test_one_seed_says_there_is_no_interval():
    text = sentence(NOT_SUPPORTED, [measured(compare([20.0], [22.0], better="higher"), SAYS)])
    assert "2.00 dB sharper (1 seed, no interval)" in text and "--seeds 5" in text


def test_not_measured_names_the_question_and_asks_for_a_rerun():
    text = sentence(NOT_MEASURED, [measured(None, SAYS)])
    assert text.startswith("Whether the skips sharpen the reconstructions") and "rerun" in text
    assert text.count(NOT_MEASURED) == 1 and not numbers_in(text)


def test_partly_says_which_part_fell_short_and_why():
    good = compare(BASE, [b + 3 for b in BASE[:4]] + [BASE[4] + 3.2], better="higher")
    weak = compare(BASE, [b + s for b, s in zip(BASE, [0.3, -0.5, 0.6, 0.4, -0.1])], better="higher")
    other = Wording("with the added skips, the reconstructions are", "sharper", "blurrier", "the added skips", " dB")
    text = sentence(PARTLY, [measured(good, SAYS), measured(weak, other)])
    held, short = text.split("; but ", 1)
    assert said(good.effect) in held and said(weak.effect) in short
    assert "with the added skips" in short and NOT_SUPPORTED in short and "would settle it" in short
    assert text.endswith(f": {PARTLY}.")


def test_a_check_that_is_not_the_claims_point_is_said_only_when_it_falls_short():
    ev = compare(BASE, [b + 3 for b in BASE], better="higher")
    check = Wording("the test BCE is", "higher", "lower", "the BCE", spec=".4f")
    fine = measured(compare([0.2] * 4 + [0.21], [0.1] * 4 + [0.12], better="lower"), check, headline=False)
    assert "BCE" not in sentence(SUPPORTED, [measured(ev, SAYS), fine])
    worse = measured(compare([0.1] * 4 + [0.12], [0.2] * 4 + [0.21], better="lower"), check, headline=False)
    assert "the test BCE is 0.0980 higher" in sentence(CONTRADICTED, [measured(ev, SAYS), worse])


# --- the experiments' sections: the sentence comes from their stored numbers -----------------------

def _ae_folder(tmp_path, gains, evidence=True):
    wobble = [0.3, -0.2, 0.1, -0.4, 0.2]
    variants = {}
    for skip, gain in (("none", 0.0), ("concat", gains)):
        variants[skip] = {"params": 10, "test_bce": 0.2, "test_psnr": 14 + gain, "test_ssim": 0.5,
                          "train_seconds": 1.0,
                          "seeds": [{"seed": i, "test_psnr": 14 + gain + 0.2 * w, "test_bce": 0.2 - 0.01 * (gain > 0)
                                     + 0.002 * w} for i, w in enumerate(wobble)]}
    summary = {"seeds": 5, "variants": variants, "baselines": {"mean_image": {"psnr": 11.9}}}
    if evidence:
        summary["evidence"] = autoencoder.skip_evidence(variants)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return Run(tmp_path, "autoencoder", {}, summary)


def test_the_autoencoder_sentence_comes_from_its_stored_numbers(tmp_path):
    sec = autoencoder.section(_ae_folder(tmp_path, 3.3))
    ev = Evidence.from_dict(sec_evidence(tmp_path))
    assert sec.verdict == SUPPORTED
    assert f"{ev.effect:.2f} dB sharper (95 % interval {ev.low:.2f} to {ev.high:.2f} dB, 5 seeds)" in sec.sentence
    assert sec.sentence.endswith(": supported.") and "rule" not in sec.sentence


def sec_evidence(folder):
    return json.loads((folder / "summary.json").read_text())["evidence"]["concat"]["psnr"]


def test_an_old_autoencoder_folder_still_gets_a_sentence(tmp_path):
    sec = autoencoder.section(_ae_folder(tmp_path, 3.3, evidence=False))
    assert sec.verdict == NOT_MEASURED and NOT_MEASURED in sec.sentence and "rerun" in sec.sentence


def test_partly_supported_diffusion_names_the_short_part_and_the_samples_that_settle_it(tmp_path):
    from connlab.experiments.diffusion import section
    from connlab.experiments.section import load_run

    folder = tmp_path / "diffusion"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "diffusion", "config": {}}))
    agreement = [0.5] * 20 + [0.95] * 30
    (folder / "summary.json").write_text(json.dumps({
        "quality": {"frechet_distance": 70.0, "mean_confidence": 0.93, "classes_covered": 10, "steps": 50,
                    "num_samples": 1000},
        "frechet_floor": 13.67,
        "structure_first": {"agreement": agreement, "structure_step": 20, "steps": 50, "structure_fraction": 0.42,
                            "agree": 0.9, "relative_l2_change_after": 0.13, "relative_l2_interval": [0.12, 0.14],
                            "num": 100, "verdict": SUPPORTED}}))
    low, high, n, margin = -5.0, 25.0, 500, 16.0     # the interval reaches past the margin: not settled
    ev = Evidence((low + high) / 2, None, low, high, n, 0.95, "bootstrap", "lower", NOT_SUPPORTED)
    (folder / "eval.json").write_text(json.dumps({
        "num": n, "frechet_floor": 19.24, "rows": [{"sampler": "ddim", "steps": 50, "frechet_distance": 80.0}],
        "fewer_steps": {"ddim_steps": 50, "ddpm_frechet": 80.0, "ddim_frechet": 90.0, "margin": margin,
                        "margin_share": 0.2, "evidence": ev.as_dict(), "verdict": NOT_SUPPORTED}}))
    sec = section(load_run(folder))
    assert sec.verdict == PARTLY
    held, short = sec.sentence.split("; but ", 1)
    assert "10 of the 10 classes" in held and "0.93" in held
    assert "DDIM with 50 steps" in short and f"{ev.effect:.2f} higher" in short and NOT_SUPPORTED in short
    assert f"+{margin:.2f}" in short
    # the bootstrap interval narrows as 1/sqrt(N): the N at which its upper end would fall below the margin
    needed = math.ceil(n * (((high - low) / 2) / (margin - ev.effect)) ** 2 / 100) * 100
    assert f"about {needed} samples per sampler" in short and sec.sentence.endswith(f": {PARTLY}.")
    # the two Fréchet floors say which N each belongs to
    page_rows = [r for t in sec.tables for r in t.rows if "floor" in r[0]]
    assert any("N = 1000" in r[0] and "13.67" in r[-1] for r in page_rows)
    assert any("N = 500" in r[0] and r[2] == "19.24" for r in page_rows)
    assert any("13.67" in note and "19.24" in note for note in sec.notes)


def test_a_relative_effect_only_against_a_baseline_away_from_zero():
    near_zero = compare([0.44, 0.40, 0.48, 0.43, 0.45], [-0.33, -0.35, -0.30, -0.31, -0.36], better="lower")
    assert abs(near_zero.relative) > 1 and "%" not in near_zero.text("gap").split("[")[0]
    far = compare([20.0, 21.0, 22.0, 20.5, 21.5], [23.0, 24.1, 25.0, 23.4, 24.6], better="higher")
    rel = 100 * far.relative
    assert f"(+{rel:.1f} %)" in far.text("PSNR")


def test_the_toy_heads_three_parts_join_into_one_sentence_with_one_and():
    """Found in the course demo's report: the third part's wording began with "and", so the join said "and and"."""
    from connlab.experiments.toy_attention_page import plain_sentence

    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.02, 5)
    claims = {"attention": compare(base, base + 0.3 + rng.normal(0, 0.01, 5), better="higher").as_dict(),
              "unmasked_below_floor": compare(base, base + 0.11 + rng.normal(0, 0.01, 5), better="higher").as_dict(),
              "unmasked_generation": compare(base, base + 0.37 + rng.normal(0, 0.01, 5), better="higher").as_dict()}
    said = plain_sentence(claims, SUPPORTED, trained=True)
    assert said.endswith(": supported.") and said[0].isupper(), said
    assert "and and" not in said and said.count(", and ") == 1, said
    assert "generating one token at a time" in said and "the right object after `the`" in said, said
