"""The seeded comparisons' rules (autoencoder, skipmlp, rnn, depth) on synthetic run folders.

No training here: summaries are built from made-up per-seed numbers through each experiment's own
evidence function, so each rule is checked on both sides (it supports a clear effect and refuses
noise or a contradiction), and old folders without stored intervals still render.
"""

from __future__ import annotations

import json

import pytest

from connlab.evidence import CONTRADICTED, NOT_SUPPORTED, SUPPORTED
from connlab.experiments import autoencoder, autoencoder_page, depth, rnn, skipmlp
from connlab.experiments.section import INCONCLUSIVE, NO_INTERVALS, PARTLY, NOT_MEASURED, Run, weakest

NOISE = [0.3, -0.2, 0.1, -0.4, 0.2]   # a seed-to-seed wobble, mean 0


def _run(tmp_path, experiment, summary):
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return Run(tmp_path, experiment, {}, json.loads((tmp_path / "summary.json").read_text()))


def test_weakest_takes_the_weaker_verdict():
    assert weakest([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert weakest([SUPPORTED, NOT_SUPPORTED]) == NOT_SUPPORTED
    assert weakest([NOT_SUPPORTED, CONTRADICTED, SUPPORTED]) == CONTRADICTED
    assert weakest([]) == NOT_MEASURED


# --- skipmlp -----------------------------------------------------------------------------------------

def _skipmlp_summary(gain):
    variants = {kind: {"params": 100, "test_accuracy": 0.8, "test_accuracy_std": 0.01, "final_train_loss": 0.5,
                       "final_train_loss_std": 0.01,
                       "seeds": [{"seed": i, "test_accuracy": 0.8 + (g if kind == "skip" else 0) + 0.005 * e}
                                 for i, (g, e) in enumerate(zip(gain, NOISE))]}
                for kind in skipmlp.KINDS}
    return {"seeds": 5, "variants": variants, "evidence": {"accuracy": skipmlp.accuracy_evidence(variants).as_dict()}}


@pytest.mark.parametrize("gain, expected", [([0.03] * 5, SUPPORTED), ([0.004, -0.004, 0.002, -0.002, 0], NOT_SUPPORTED),
                                            ([-0.03] * 5, CONTRADICTED)])
def test_skipmlp_rule(tmp_path, gain, expected):
    sec = skipmlp.section(_run(tmp_path, "skipmlp", _skipmlp_summary(gain)))
    assert sec.verdict == expected
    assert sec.verdict_text.startswith("rule: ") and "n = 5" in sec.verdict_text and "95 % CI" in sec.verdict_text
    assert sec.rule == skipmlp.RULE and "[95 % CI" in sec.effect and "n = 5" in sec.effect


def test_skipmlp_old_folder_without_intervals(tmp_path):
    summary = _skipmlp_summary([0.03] * 5)
    del summary["evidence"]
    sec = skipmlp.section(_run(tmp_path, "skipmlp", summary))
    assert sec.verdict == NOT_MEASURED and NO_INTERVALS in sec.verdict_text and sec.effect == ""


# --- autoencoder -------------------------------------------------------------------------------------

def _ae_summary(psnr_gain, bce_gain):
    variants = {}
    for skip in ("none", "concat", "add"):
        g = 0 if skip == "none" else 1
        variants[skip] = {"params": 10, "test_bce": 0.2, "test_bce_std": 0.01, "test_psnr": 14 + g * psnr_gain,
                          "test_psnr_std": 0.2, "test_ssim": 0.5, "test_ssim_std": 0.01, "train_seconds": 1.0,
                          "seeds": [{"seed": i, "test_psnr": 14 + g * psnr_gain + 0.2 * e,
                                     "test_bce": 0.2 + g * bce_gain + 0.002 * e} for i, e in enumerate(NOISE)]}
    return {"seeds": 5, "variants": variants, "evidence": autoencoder.skip_evidence(variants),
            "baselines": {"noisy_input": {"psnr": 9.4, "ssim": 0.2, "mse": 0.1, "bce": None,
                                          "bce_note": "log clamped at -100 (PyTorch); 91.6 % of this BCE ..."},
                          "mean_image": {"psnr": 11.9, "ssim": 0.34, "mse": 0.06, "bce": 0.26}}}


def test_autoencoder_rule_needs_every_comparison(tmp_path):
    sec = autoencoder.section(_run(tmp_path, "autoencoder", _ae_summary(3.0, -0.05)))
    assert sec.verdict == SUPPORTED and sec.verdict_text.count("rule: ") == 4
    assert sec.effect.startswith("concat − none PSNR effect +3.00 dB") and sec.rule
    assert "—" in sec.tables[0].rows[3] and any("log clamp" in n for n in sec.notes)   # noisy-input BCE not shown
    # PSNR better but BCE worse: the claim is not supported as a whole
    sec = autoencoder.section(_run(tmp_path, "autoencoder", _ae_summary(3.0, +0.05)))
    assert sec.verdict == CONTRADICTED


def test_autoencoder_below_the_mean_image_is_inconclusive(tmp_path):
    summary = _ae_summary(3.0, -0.05)
    summary["baselines"]["mean_image"]["psnr"] = 30.0
    assert autoencoder.section(_run(tmp_path, "autoencoder", summary)).verdict == INCONCLUSIVE


def test_autoencoder_old_folder(tmp_path):
    summary = _ae_summary(3.0, -0.05)
    del summary["evidence"]
    summary["baselines"]["noisy_input"]["bce"] = 3.62   # old folders stored the clamped number
    sec = autoencoder.section(_run(tmp_path, "autoencoder", summary))
    assert sec.verdict == NOT_MEASURED and NO_INTERVALS in sec.verdict_text


@pytest.mark.parametrize("drift, answer", [(+1.0, "(A)"), (0.0, "(B)"), (-1.0, "(C)")])
def test_autoencoder_feed_back_answer(drift, answer):
    from connlab.evidence import compare

    first = [15 + 0.5 * ((i * 7) % 11 - 5) for i in range(100)]
    last = [p + drift + 0.1 * ((i * 3) % 5 - 2) for i, p in enumerate(first)]
    passes = {"concat": [{"pass": 1, "psnr": sum(first) / 100}, {"pass": 2, "psnr": sum(last) / 100}]}
    text = autoencoder_page.iterate_answer(passes, 0.13, {"concat": compare(first, last, better="higher",
                                                                            what="test digits").as_dict()})
    assert answer in text and "n = 100" in text and "rule: " in text


# --- rnn ---------------------------------------------------------------------------------------------

def _rnn_summary(gru_mse):
    base = [0.167 + 0.001 * e for e in NOISE]
    results = {kind: {"50": {"seeds": [{"seed": i, "test_mse": m} for i, m in enumerate(mses)]}}
               for kind, mses in (("rnn", [0.166 + 0.001 * e for e in NOISE]), ("gru", gru_mse))}
    return {"lengths": [50], "seeds": 5, "models": {"rnn": "plain RNN", "gru": "GRU"},
            "baseline_mse": {"50": base[0]}, "test_mse": {k: {"50": sum(r["test_mse"] for r in v["50"]["seeds"]) / 5}
                                                          for k, v in results.items()},
            "evidence": rnn.gru_evidence(results, {"50": base}, [50])}


def test_rnn_rule(tmp_path):
    sec = rnn.section(_run(tmp_path, "rnn", _rnn_summary([0.005 + 0.001 * e for e in NOISE])))
    assert sec.verdict == SUPPORTED and sec.verdict_text.count("rule: ") == 2 and "n = 5" in sec.verdict_text
    # the GRU no better than the plain RNN, both at the baseline: nothing learned
    sec = rnn.section(_run(tmp_path, "rnn", _rnn_summary([0.166 - 0.001 * e for e in NOISE])))
    assert sec.verdict == INCONCLUSIVE


def test_rnn_old_folder(tmp_path):
    summary = _rnn_summary([0.005] * 5)
    del summary["evidence"]
    sec = rnn.section(_run(tmp_path, "rnn", summary))
    assert sec.verdict == NOT_MEASURED and NO_INTERVALS in sec.verdict_text


# --- depth -------------------------------------------------------------------------------------------

def _depth_summary(loss, shallow_error=0.12):
    """``loss[kind][depth]``: the mean training loss; seeds wobble around it."""
    results = {kind: {str(d): {"final_train_loss": m, "test_error": shallow_error if d == 2 else 0.2,
                               "seeds": [{"seed": i, "final_train_loss": m + 0.02 * e} for i, e in enumerate(NOISE)]}
                      for d, m in per.items()} for kind, per in loss.items()}
    depths = sorted(loss["plain"])
    return {"depths": depths, "seeds": 5, "results": results, "evidence": depth.depth_evidence(results, depths)}


DEGRADES = {"plain": {2: 0.58, 8: 0.31, 16: 1.05}, "residual": {2: 0.53, 8: 0.17, 16: 0.12}}


def test_depth_degradation_and_its_removal(tmp_path):
    sec = depth.section(_run(tmp_path, "depth", _depth_summary(DEGRADES)))
    assert sec.verdict == SUPPORTED, sec.verdict_text
    for words in ("precondition", "degradation: rule: ", "residual removes it: rule: ", "shown: rule: ", "n = 5"):
        assert words in sec.verdict_text


def test_depth_residual_still_worse_than_a_shallower_one_is_partly(tmp_path):
    loss = {"plain": DEGRADES["plain"], "residual": {2: 0.53, 8: 0.17, 16: 0.22}}   # measured shape (doc §3)
    assert depth.section(_run(tmp_path, "depth", _depth_summary(loss))).verdict == PARTLY


def test_depth_without_degradation_is_not_supported(tmp_path):
    loss = {"plain": {2: 0.58, 8: 0.31, 16: 0.2}, "residual": {2: 0.53, 8: 0.17, 16: 0.12}}
    assert depth.section(_run(tmp_path, "depth", _depth_summary(loss))).verdict == NOT_SUPPORTED


def test_depth_nets_that_did_not_learn_are_inconclusive(tmp_path):
    sec = depth.section(_run(tmp_path, "depth", _depth_summary(DEGRADES, shallow_error=0.836)))
    assert sec.verdict == INCONCLUSIVE and "did not learn" in sec.verdict_text


def test_depth_old_folder(tmp_path):
    summary = _depth_summary(DEGRADES)
    del summary["evidence"]
    sec = depth.section(_run(tmp_path, "depth", summary))
    assert sec.verdict == NOT_MEASURED and NO_INTERVALS in sec.verdict_text


def test_one_seed_says_what_would_settle_it(tmp_path):
    from connlab.experiments.section import evidence_line
    from connlab.evidence import compare

    verdict, line = evidence_line(compare([0.8], [0.9], better="higher").as_dict(), "r", "accuracy")
    assert verdict == NOT_SUPPORTED and "rerun with --seeds 5" in line
    assert "rerun with" not in evidence_line(compare([0.8, 0.81], [0.9, 0.92], better="higher").as_dict(), "r", "a")[1]
