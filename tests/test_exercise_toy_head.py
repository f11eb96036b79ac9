"""Notebook 04's check of the masked, scaled head: it names each typical mistake and accepts every correct variant."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from connlab.exercises import CheckFailed, check_causal_attention, check_toy_head


def _scores(q, k, scale=None):
    return q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)


def _tril(n):
    return torch.tril(torch.ones(n, n))


def neg_inf_fill(q, k, v):
    n = q.shape[-2]
    s = _scores(q, k).masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w


def tril_mask(q, k, v):
    s = _scores(q, k).masked_fill(_tril(q.shape[-2]) == 0, float("-inf"))
    return torch.softmax(s, -1) @ v


def keras_large_negative(q, k, v):   # the course's Keras Softmax(mask=...) adds −1e9 where the mask is 0
    mask = _tril(q.shape[-2])
    w = torch.softmax(_scores(q, k) + (1 - mask) * -1e9, dim=-1)
    return w @ v, w


def sdpa_is_causal(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def no_mask(q, k, v):
    return torch.softmax(_scores(q, k), -1) @ v


def triangle_wrong_way(q, k, v):
    s = _scores(q, k).masked_fill(torch.triu(torch.ones(q.shape[-2], q.shape[-2])) == 0, float("-inf"))
    return torch.softmax(s, -1) @ v


def scaled_by_h(q, k, v):
    s = _scores(q, k, 1 / q.shape[-1]).masked_fill(_tril(q.shape[-2]) == 0, float("-inf"))
    return torch.softmax(s, -1) @ v


def not_scaled(q, k, v):
    s = _scores(q, k, 1.0).masked_fill(_tril(q.shape[-2]) == 0, float("-inf"))
    return torch.softmax(s, -1) @ v


def softmax_over_queries(q, k, v):
    s = _scores(q, k).masked_fill(_tril(q.shape[-2]) == 0, float("-inf"))
    return torch.softmax(s, dim=-2) @ v


def zero_fill(q, k, v):
    s = _scores(q, k).masked_fill(_tril(q.shape[-2]) == 0, 0.0)
    return torch.softmax(s, -1) @ v


def mask_after_softmax(q, k, v):
    return (torch.softmax(_scores(q, k), -1) * _tril(q.shape[-2])) @ v


@pytest.mark.parametrize("variant", [neg_inf_fill, tril_mask, keras_large_negative, sdpa_is_causal])
def test_accepts_every_correct_variant(variant, capsys):
    assert check_causal_attention(variant)["max_abs_difference"] < 1e-5
    assert "is_causal=True" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", [
    (no_mask, "no mask — position t sees t + 1: the head reads the answer"),
    (triangle_wrong_way, "triangle is the wrong way round"),
    (scaled_by_h, "divided by H = 20; divide by √H"),
    (not_scaled, "not scaled"),
    (softmax_over_queries, "softmax runs over the queries"),
    (zero_fill, "set to 0, not −inf"),
    (mask_after_softmax, "applied after the softmax"),
])
def test_names_each_typical_mistake(mistake, words):
    with pytest.raises(CheckFailed) as err:
        check_causal_attention(mistake)
    assert words in str(err.value)


def test_names_an_error_inside_the_students_code_and_a_wrong_shape():
    with pytest.raises(CheckFailed, match="raised RuntimeError"):
        check_causal_attention(lambda q, k, v: q @ k)
    with pytest.raises(CheckFailed, match="out should be"):
        check_causal_attention(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1))


def test_toy_head_check_names_a_head_that_saw_the_future_and_one_that_did_not_learn():
    from connlab.models.toy_attention import ToyAttentionModel, ToyHeadConfig, ToyHeadStack, corpus
    from connlab.train.full_batch import Phase, train_full_batch

    x, y = corpus()
    with pytest.raises(CheckFailed, match="has not learned who ordered"):
        check_toy_head(ToyAttentionModel())
    stack = ToyHeadStack([ToyHeadConfig(causal=False)], [1])
    train_full_batch(list(stack.parameters()), lambda: stack.losses(x, y), [Phase(400)], 0.03, optimizer="adam")
    with pytest.raises(CheckFailed, match="below the floor"):
        check_toy_head(stack.module(0))


def test_toy_head_check_waits_for_an_unwritten_attention():
    """A head built on the notebook's unwritten place says which place, not the place's own sentence again."""
    from connlab.exercises import YourTurn
    from connlab.models.toy_attention import ToyAttentionModel, ToyHeadConfig

    def unwritten(q, k, v):
        raise YourTurn("scale the scores by 1/√H")

    with pytest.raises(YourTurn, match=r"runs your causal_attention \(section 2\), which is not written yet"):
        check_toy_head(ToyAttentionModel(ToyHeadConfig(causal=False), attention=unwritten))
