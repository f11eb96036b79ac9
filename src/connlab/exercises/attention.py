"""Check for notebook 04: scaled dot-product attention, softmax(q kᵀ / √d) v (Vaswani et al. 2017, eq. 1).

The reference is ``torch.nn.functional.scaled_dot_product_attention``; the inputs have a batch
and a head dimension and more keys than queries, so a transposed or mis-reduced tensor shows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from connlab.exercises.common import fail, passed, run_piece

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
