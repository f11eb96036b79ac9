"""The notebook checks (``connlab.exercises``): each passes on the solution and fails on a typical mistake
with the one sentence that names it."""

from __future__ import annotations

import math

import pytest
import torch

from connlab.exercises import (
    CheckFailed, YourTurn, check_attention, check_ddim_step, check_q_sample,
)
from connlab.nn.attention import TransformerBlock, scaled_dot_product_attention


def fails_with(check, piece, *phrases):
    with pytest.raises(CheckFailed) as info:
        check(piece)
    message = str(info.value)
    assert "\n" not in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


# --- 01: tests/test_exercise_autoencoder.py ---------------------------------------------------------

def test_a_marked_place_says_your_turn_in_one_line():
    error = YourTurn("write the concatenation skip here")
    assert error._render_traceback_() == ["Your turn: write the concatenation skip here"]
    assert isinstance(error, NotImplementedError)


# --- 02: tests/test_exercise_ladder.py ----------------------------------------------------------------


# --- 03: q(x_t | x_0) and one DDIM step --------------------------------------------------------------------

def q_sample(x0, t, eps, alpha_bar, *, power=0.5, noise_power=0.5, reshape=True):
    ab = alpha_bar[t].view(-1, 1, 1, 1) if reshape else alpha_bar[t]
    return ab ** power * x0 + (1 - ab) ** noise_power * eps


def ddim(x_t, eps, ab, ab_prev, *, mistake=None):
    x0_hat = (x_t - (1 - ab) ** 0.5 * eps) / ab ** 0.5
    if mistake == "x0":
        return x0_hat
    if mistake == "no direction":
        return ab_prev ** 0.5 * x0_hat
    return ab_prev ** 0.5 * x0_hat + (1 - (ab if mistake == "ab_t" else ab_prev)) ** 0.5 * eps


def test_q_sample_check_passes_and_names_each_mistake():
    assert check_q_sample(q_sample)["max_abs_difference"] < 1e-5
    fails_with(check_q_sample, lambda *a: q_sample(*a, noise_power=1.0),
               "x_t − √ᾱ_t·x_0 should have std √(1 − ᾱ_t) = ", "that is 1 − ᾱ_t: take its square root")
    fails_with(check_q_sample, lambda *a: q_sample(*a, power=1.0), "√ᾱ_t·x_0", "that is ᾱ_t: take its square root")
    fails_with(check_q_sample, lambda *a: q_sample(*a, reshape=False), "(B, 1, 1, 1)")


def test_ddim_check_passes_and_names_each_mistake():
    check_ddim_step(ddim)
    fails_with(check_ddim_step, lambda *a: ddim(*a, mistake="x0"), "you returned x̂_0")
    fails_with(check_ddim_step, lambda *a: ddim(*a, mistake="no direction"), "missing the direction term")
    fails_with(check_ddim_step, lambda *a: ddim(*a, mistake="ab_t"), "it should use √(1 − ᾱ_{t−1})")


# --- 04: attention -------------------------------------------------------------------------------------------

def attention(q, k, v, *, scale=None, dim=-1, transpose="ok"):
    kt = k.T if transpose == "T" else k.transpose(-2, -1)
    scores = q @ kt / (math.sqrt(q.shape[-1]) if scale is None else scale(q.shape[-1]))
    weights = torch.softmax(scores, dim=dim)
    return weights @ v, weights


def test_attention_check_passes_on_the_solution_and_the_labs():
    assert check_attention(attention)["max_abs_difference"] <= 1e-6
    check_attention(lambda q, k, v: scaled_dot_product_attention(q, k, v))


@pytest.mark.filterwarnings("ignore:The use of `x.T`")   # k.T on 4-D tensors is the mistake under test
def test_attention_check_names_each_mistake():
    fails_with(check_attention, lambda q, k, v: attention(q, k, v, scale=lambda d: 1.0),
               "the scores are not divided by √d = √16 = 4")
    fails_with(check_attention, lambda q, k, v: attention(q, k, v, scale=lambda d: d), "divided by d = 16")
    fails_with(check_attention, lambda q, k, v: attention(q, k, v, dim=-2), "the softmax runs over the queries")
    fails_with(check_attention, lambda q, k, v: attention(q, k, v, transpose="T"), "k.transpose(-2, -1)")
    fails_with(check_attention, lambda q, k, v: attention(q, k, v)[::-1], "return (out, weights)")


def test_a_transformer_block_runs_the_attention_it_is_given():
    calls = []

    def mine(q, k, v):
        calls.append(q.shape)
        return attention(q, k, v)

    torch.manual_seed(0)
    lab = TransformerBlock(16, 4)
    theirs = TransformerBlock(16, 4, attention=mine)
    theirs.load_state_dict(lab.state_dict())
    x = torch.randn(2, 5, 16)
    assert torch.allclose(theirs(x), lab(x), atol=1e-6)
    assert calls == [torch.Size([2, 4, 5, 4])]
    assert torch.allclose(theirs.last_attention, lab.last_attention, atol=1e-6)


def test_nothing_in_the_lab_imports_the_exercise_layer():
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "connlab"
    importers = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if "exercises" not in p.parts and "connlab.exercises" in p.read_text(encoding="utf-8")]
    assert importers == []


# --- 03: the mistakes that used to be named only by their symptom -------------------------------------------

def _q_sample_alpha(x0, t, eps, alpha_bar):
    """α_t = ᾱ_t / ᾱ_{t−1} where ᾱ_t belongs."""
    prev = torch.where(t > 0, alpha_bar[(t - 1).clamp(min=0)], torch.ones_like(alpha_bar[t]))
    a = (alpha_bar[t] / prev).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def _q_sample_minus(x0, t, eps, alpha_bar):
    ab = alpha_bar[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 - (1 - ab).sqrt() * eps


def _ddim_with(mistake):
    def step(x_t, eps, ab, ab_prev):
        alpha = ab / ab_prev
        if mistake == "ddpm":
            return (x_t - (1 - alpha) / (1 - ab) ** 0.5 * eps) / alpha ** 0.5
        if mistake == "alpha":
            x0_hat = (x_t - (1 - alpha) ** 0.5 * eps) / alpha ** 0.5
        else:
            x0_hat = (x_t + (-1 if mistake != "sign x0" else 1) * (1 - ab) ** 0.5 * eps) / ab ** 0.5
        sign = -1 if mistake == "sign direction" else 1
        return ab_prev ** 0.5 * x0_hat + sign * (1 - ab_prev) ** 0.5 * eps
    return step


@pytest.mark.parametrize("piece, sentence", [
    (_q_sample_alpha, "you used α_t, one step's 1 − β_t"),
    (_q_sample_minus, "a sign error: the noise is added"),
], ids=["alpha_t for alpha_bar_t", "sign"])
def test_q_sample_check_names_the_mistake_not_its_symptom(piece, sentence):
    fails_with(check_q_sample, piece, sentence)


@pytest.mark.parametrize("mistake, sentence", [
    ("ddpm", "that is DDPM's update"),
    ("sign x0", "a sign error in x̂_0"),
    ("sign direction", "a sign error in x_{t−1}"),
    ("alpha", "you used one step's α_t = ᾱ_t / ᾱ_{t−1} in x̂_0"),
])
def test_ddim_check_names_the_mistake_not_its_symptom(mistake, sentence):
    check_ddim_step(_ddim_with("none"))
    fails_with(check_ddim_step, _ddim_with(mistake), sentence)
