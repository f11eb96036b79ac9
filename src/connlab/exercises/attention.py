"""Check for notebook 04: scaled dot-product attention, softmax(q kᵀ / √d) v (Vaswani et al. 2017, eq. 1).

The reference is ``torch.nn.functional.scaled_dot_product_attention``; the inputs have a batch
and a head dimension and more keys than queries, so a transposed or mis-reduced tensor shows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from connlab.exercises.common import YourTurn, fail, passed, run_piece
from connlab.models.toy_attention import corpus, keras_sparse_ce, loss_floor, p_object_at_the

B, H, LQ, LK, D, DV = 2, 3, 5, 7, 16, 8
ATOL = 1e-6


def check_attention(attention) -> dict:
    """``attention(q, k, v)`` -> (out, weights); q (..., Lq, d), k (..., Lk, d), v (..., Lk, d_v)."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(B, H, LQ, D, generator=g), torch.randn(B, H, LK, D, generator=g)
    v = torch.randn(B, H, LK, DV, generator=g)
    got = run_piece(f"attention on q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}", attention, q, k, v,
                    hint="use k.transpose(-2, -1), not k.T, so the batch and head dimensions stay put")
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        fail(f"attention should return (out, weights), got {type(got).__name__}")
    out, weights = got
    if tuple(weights.shape) == (B, H, LQ, DV) and tuple(out.shape) == (B, H, LQ, LK):
        fail("attention returns (weights, out); return (out, weights)")
    if tuple(weights.shape) != (B, H, LQ, LK):
        fail(f"weights should be (..., Lq, Lk) = {(B, H, LQ, LK)}, one row per query, got {tuple(weights.shape)}")
    if tuple(out.shape) != (B, H, LQ, DV):
        fail(f"out should be (..., Lq, d_v) = {(B, H, LQ, DV)}, got {tuple(out.shape)} — out = weights @ v")
    scores = q @ k.transpose(-2, -1)
    want_w = torch.softmax(scores / math.sqrt(D), dim=-1)
    if not torch.allclose(weights, want_w, atol=ATOL):
        rows = weights.sum(-1)
        if torch.allclose(weights, torch.softmax(scores, dim=-1), atol=ATOL):
            fail(f"the scores are not divided by √d = √{D} = {math.sqrt(D):g}: weights = softmax(q kᵀ / √d)")
        if torch.allclose(weights, torch.softmax(scores / D, dim=-1), atol=ATOL):
            fail(f"the scores are divided by d = {D}; divide by √d = {math.sqrt(D):g}")
        if torch.allclose(weights, torch.softmax(scores / math.sqrt(D), dim=-2), atol=ATOL):
            fail("the softmax runs over the queries (dim=-2): each query's row of weights should sum to 1, "
                 "so take the softmax over the keys, dim=-1")
        if not torch.allclose(rows, torch.ones_like(rows), atol=1e-5):
            fail(f"each row of weights should sum to 1 (a softmax over the keys), got sums from "
                 f"{rows.min().item():.3f} to {rows.max().item():.3f}")
        fail(f"weights differ from softmax(q kᵀ / √d) by up to {(weights - want_w).abs().max().item():.2g}")
    want = F.scaled_dot_product_attention(q, k, v)
    diff = (out - want).abs().max().item()
    if diff > ATOL:
        fail(f"weights are right but out differs from F.scaled_dot_product_attention by {diff:.2g}: out = weights @ v")
    passed(f"attention matches F.scaled_dot_product_attention to {diff:.1e} (≤ 1e-6) on q {tuple(q.shape)}, "
           f"k {tuple(k.shape)}, v {tuple(v.shape)}; every row of weights sums to 1")
    return {"max_abs_difference": diff}


# --- the course's toy head: the masked, scaled head the student writes ---------------------------------

T, HEAD, E = 5, 20, 7        # the toy task's length, head size and embedding size


def _weights_of(q, k, scale, keep=None, dim=-1, fill=float("-inf")):
    scores = q @ k.transpose(-2, -1) * scale
    if keep is not None:
        scores = scores.masked_fill(~keep, fill)
    return torch.softmax(scores, dim=dim)


def _causal_mistakes(q, k, v) -> list[tuple[str, torch.Tensor]]:
    """The outputs of the typical mistakes, each with the sentence that names it (most telling first)."""
    n = q.shape[-2]
    lower = torch.ones(n, n, dtype=torch.bool).tril()
    s = 1 / math.sqrt(q.shape[-1])
    return [
        ("no mask — position t sees t + 1: the head reads the answer. Fill the scores above the diagonal "
         "(key j > query t) with −inf before the softmax", _weights_of(q, k, s) @ v),
        ("the mask's triangle is the wrong way round: each position sees itself and the future, not the past. "
         "Keep keys j ≤ t (torch.tril), hide j > t", _weights_of(q, k, s, lower.T) @ v),
        (f"the scores are divided by H = {q.shape[-1]}; divide by √H = {math.sqrt(q.shape[-1]):.3g}",
         _weights_of(q, k, 1 / q.shape[-1], lower) @ v),
        (f"the scores are not scaled: multiply q kᵀ by 1/√H = {s:.3g} before the softmax",
         _weights_of(q, k, 1.0, lower) @ v),
        ("the softmax runs over the queries (dim=-2): each query's row of weights must sum to 1, so take the "
         "softmax over the keys, dim=-1", _weights_of(q, k, s, lower, dim=-2) @ v),
        ("the masked scores are set to 0, not −inf: e⁰ = 1, so a hidden key still gets weight. Fill with "
         "float('-inf')", _weights_of(q, k, s, lower, fill=0.0) @ v),
        ("the mask is applied after the softmax: the rows no longer sum to 1. Mask the scores (−inf) before "
         "the softmax", (_weights_of(q, k, s) * lower) @ v),
    ]


def check_causal_attention(attention) -> dict:
    """``attention(q, k, v)`` -> out or (out, weights), the toy head's masked, scaled attention.

    q, k (B, T, H), v (B, T, E); weights = softmax over the keys of q kᵀ / √H with keys j > t hidden
    from query t; out = weights @ v. Accepts a −inf fill, a ``torch.tril`` mask, a large negative
    fill (Keras' −1e9) or ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``.
    """
    g = torch.Generator().manual_seed(0)
    # Scores of order 1 after the √H scaling, so every mistake moves the output visibly.
    q, k = 2 * torch.randn(2, T, HEAD, generator=g), 2 * torch.randn(2, T, HEAD, generator=g)
    v = torch.randn(2, T, E, generator=g)
    got = run_piece(f"attention on q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}", attention, q, k, v,
                    hint="q @ k.transpose(-2, -1) gives the (B, T, T) scores")
    out, weights = (got if isinstance(got, (tuple, list)) and len(got) == 2 else (got, None))
    if not isinstance(out, torch.Tensor):
        fail(f"attention should return out (or (out, weights)), got {type(out).__name__}")
    if tuple(out.shape) != tuple(v.shape):
        fail(f"out should be (B, T, E) = {tuple(v.shape)}, one row per query: out = weights @ v; "
             f"got {tuple(out.shape)}")
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    diff = (out - want).abs().max().item()
    if diff > 1e-5:
        for sentence, candidate in _causal_mistakes(q, k, v):
            if torch.allclose(out, candidate, atol=1e-5):
                fail(sentence)
        future = v.clone()
        future[:, -1] += 10.0
        again = run_piece("attention with a changed last value", attention, q, k, future)
        again = again[0] if isinstance(again, (tuple, list)) else again
        if (again[:, :-1] - out[:, :-1]).abs().max().item() > 1e-5:
            fail("earlier positions change when the last value changes: position t sees the future, so the "
                 "mask is missing or wrong — hide keys j > t")
        fail(f"out differs from the masked, scaled attention by up to {diff:.2g}: weights = softmax over the keys "
             f"of q kᵀ / √H with −inf above the diagonal; out = weights @ v")
    if weights is not None:
        if tuple(weights.shape) != (2, T, T):
            fail(f"weights should be (B, T, T) = {(2, T, T)}, got {tuple(weights.shape)}")
        if weights.triu(1).abs().max().item() > 1e-6:
            fail("the weights above the diagonal are not 0: position t gives weight to keys after it")
    passed(f"masked, scaled attention matches F.scaled_dot_product_attention(..., is_causal=True) to {diff:.1e}: "
           f"position t sees positions ≤ t only, the scores are scaled by 1/√{HEAD}, each row sums to 1")
    return {"max_abs_difference": diff}


def check_toy_head(model) -> dict:
    """A trained toy head (``ToyAttentionModel``): its loss against the floor and its predictions at `the`."""
    x, y = corpus()
    try:
        with torch.no_grad():
            loss = keras_sparse_ce(model(x), y).mean().item()
            p = p_object_at_the(model.next_token_probs(x)).item()
    except YourTurn:   # the head calls the student's attention: this check waits for that place, and says so
        raise YourTurn("the head runs your causal_attention (section 2), which is not written yet: write it, then "
                       "train the head") from None
    floor = loss_floor()
    if loss < floor - 0.005:
        fail(f"the loss {loss:.4f} is below the floor ln 2 / 5 = {floor:.4f}, which no model that reads only the "
             f"past can reach: the head sees the future — is the mask in place?")
    if p < 0.75:
        fail(f"at `the` the right object gets P = {p:.2f} (½ is a guess): the head has not learned who ordered. "
             f"Train longer, or try another seed or H — the course: '20 works well I think, but not always'")
    passed(f"loss {loss:.4f} (floor {floor:.4f}); at `the` P(chicken | man) and P(beef | woman) average {p:.2f}")
    return {"loss": loss, "p_object_at_the": p}
