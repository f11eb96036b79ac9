"""Attention: parity with torch's SDPA and MultiheadAttention, masks, Transformer block."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from connlab.nn import MultiHeadAttention, TransformerBlock, causal_mask, scaled_dot_product_attention

TOL = {"atol": 1e-5, "rtol": 1e-5}


def _qkv(lq=5, lk=7, d=8, dv=6, batch=(2, 3)):
    return torch.randn(*batch, lq, d), torch.randn(*batch, lk, d), torch.randn(*batch, lk, dv)


def test_causal_mask_is_lower_triangular():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert m[2, 2] and m[2, 0] and not m[2, 3]
    assert m.sum() == 4 * 5 // 2


def test_attention_matches_torch_without_mask():
    torch.manual_seed(0)
    q, k, v = _qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL)
    assert weights.shape == (2, 3, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5), **TOL)


def test_attention_matches_torch_with_broadcast_mask_and_zeroes_masked_weights():
    torch.manual_seed(0)
    q, k, v = _qkv()
    mask = torch.rand(2, 1, 5, 7) > 0.4  # broadcast over the middle dim
    mask[..., 0] = True  # every query keeps at least one key
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)
    assert torch.all(weights.masked_select(~mask.expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5), **TOL)


def test_attention_matches_torch_causal():
    torch.manual_seed(0)
    q, k, v = _qkv(lq=6, lk=6)
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(6))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)
    assert torch.all(weights.triu(diagonal=1) == 0)
    torch.testing.assert_close(weights[..., 0, 0], torch.ones(2, 3))  # first token sees only itself


@pytest.mark.parametrize("bad_shape", [(5, 6), (2, 5, 7), (2, 3, 5, 7, 1)])
def test_attention_rejects_mask_that_does_not_broadcast(bad_shape):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"mask of shape .* does not broadcast .*\(2, 3, 5, 7\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(bad_shape, dtype=torch.bool))


def test_attention_rejects_float_mask():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="bool.*float32"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 7))


def _pair(embed_dim=12, heads=3, bias=True):
    ref = nn.MultiheadAttention(embed_dim, heads, bias=bias, batch_first=True).eval()
    mine = MultiHeadAttention(embed_dim, heads, bias=bias)
    mine.load_state_dict(ref.state_dict())
    return mine, ref


@pytest.mark.parametrize("bias", [True, False])
def test_mha_self_attention_matches_torch(bias):
    torch.manual_seed(0)
    mine, ref = _pair(bias=bias)
    x = torch.randn(2, 5, 12)
    out, w = mine(x)
    ref_out, ref_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    assert out.shape == (2, 5, 12) and w.shape == (2, 3, 5, 5)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(w, ref_w, **TOL)
    _, ref_w_avg = ref(x, x, x, need_weights=True, average_attn_weights=True)
    torch.testing.assert_close(w.mean(dim=1), ref_w_avg, **TOL)


def test_mha_cross_attention_with_mask_matches_torch():
    torch.manual_seed(0)
    mine, ref = _pair()
    x_q, x_kv = torch.randn(2, 4, 12), torch.randn(2, 6, 12)
    mask = torch.rand(4, 6) > 0.5
    mask[:, 2] = True
    out, w = mine(x_q, x_kv, mask=mask)
    # torch's bool attn_mask marks *blocked* positions: the opposite convention.
    ref_out, ref_w = ref(x_q, x_kv, x_kv, attn_mask=~mask, need_weights=True, average_attn_weights=False)
    assert out.shape == (2, 4, 12) and w.shape == (2, 3, 4, 6)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(w, ref_w, **TOL)
    assert torch.all(w[..., ~mask] == 0)


def test_mha_causal_matches_torch():
    torch.manual_seed(0)
    mine, ref = _pair()
    x = torch.randn(2, 5, 12)
    out, _ = mine(x, mask=causal_mask(5))
    ref_out, _ = ref(x, x, x, attn_mask=~causal_mask(5))
    torch.testing.assert_close(out, ref_out, **TOL)


def test_mha_rejects_heads_not_dividing_dim():
    with pytest.raises(ValueError, match=r"embed_dim \(10\).*num_heads \(3\)"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"embed_dim \(10\).*num_heads \(3\)"):
        TransformerBlock(10, 3)


def test_mha_rejects_wrong_mask_and_input_shapes():
    mha = MultiHeadAttention(12, 3)
    x = torch.randn(2, 5, 12)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\).*\(2, 3, 5, 5\)"):
        mha(x, mask=causal_mask(4))
    with pytest.raises(ValueError, match=r"x_q must have shape \(B, L, 12\), got \(2, 5, 8\)"):
        mha(torch.randn(2, 5, 8))


def test_transformer_block_preserves_shape_and_stores_attention():
    torch.manual_seed(0)
    block = TransformerBlock(16, 4)
    x = torch.randn(3, 7, 16)
    assert block(x).shape == x.shape
    assert block.last_attention.shape == (3, 4, 7, 7)
    assert not block.last_attention.requires_grad


def test_transformer_block_causal_mask_hides_the_future():
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, dropout=0.1).eval()
    x = torch.randn(2, 8, 16)
    x_perturbed = x.clone()
    x_perturbed[:, 5] += 10 * torch.randn(2, 16)
    mask = causal_mask(8)
    y, y_perturbed = block(x, mask), block(x_perturbed, mask)
    torch.testing.assert_close(y[:, :5], y_perturbed[:, :5], rtol=0, atol=1e-6)
    assert (y[:, 5:] - y_perturbed[:, 5:]).abs().amax(dim=-1).min() > 1e-3  # later positions do see it
    # Without the mask the earlier positions see the future token too.
    assert not torch.allclose(block(x)[:, :5], block(x_perturbed)[:, :5], atol=1e-3)


def test_transformer_block_residual_path_is_identity_when_branches_are_zero():
    # Pre-norm: x + branch(norm(x)); zeroing both output layers leaves x itself.
    torch.manual_seed(0)
    block = TransformerBlock(8, 2)
    with torch.no_grad():
        for layer in (block.attn.out_proj, block.mlp[2]):
            layer.weight.zero_()
            layer.bias.zero_()
    x = 4 + 2 * torch.randn(2, 3, 8)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
