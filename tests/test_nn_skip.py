"""Skip connections: concatenation, residual vs plain conv blocks, residual MLP."""

import pytest
import torch

from connlab.nn import ConcatSkip, PlainBlock, ResidualBlock, ResidualMLPBlock


def test_concat_skip_carries_input_forward_unchanged():
    torch.manual_seed(0)
    block = ConcatSkip(5, growth=3, num_layers=2)
    x = torch.randn(4, 5)
    out = block(x)
    assert out.shape == (4, 5 + 2 * 3) and block.out_features == 11
    torch.testing.assert_close(out[:, :5], x, rtol=0, atol=0)
    # The second layer sees the first layer's features too (dense connectivity).
    assert block.layers[1][0].in_features == 5 + 3


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "projected"),
    [(8, 8, 1, False), (8, 16, 1, True), (8, 8, 2, True), (8, 16, 2, True)],
)
def test_residual_block_shapes_and_shortcut_kind(c_in, c_out, stride, projected):
    torch.manual_seed(0)
    block = ResidualBlock(c_in, c_out, stride)
    out = block(torch.randn(2, c_in, 12, 12))
    assert out.shape == (2, c_out, 12 // stride, 12 // stride)
    assert isinstance(block.shortcut, torch.nn.Identity) != projected
    assert PlainBlock(c_in, c_out, stride)(torch.randn(2, c_in, 12, 12)).shape == out.shape


def _zero_last_bn(block):
    with torch.no_grad():
        block.branch[-1].weight.zero_()


def test_residual_block_with_zero_last_bn_is_identity():
    torch.manual_seed(0)
    block = ResidualBlock(8, 8).train()
    _zero_last_bn(block)
    x = torch.rand(2, 8, 6, 6)  # non-negative, like the ReLU output of a previous block
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_projected_residual_block_with_zero_last_bn_is_its_shortcut():
    torch.manual_seed(0)
    block = ResidualBlock(8, 16, stride=2).eval()
    _zero_last_bn(block)
    x = torch.randn(2, 8, 6, 6)
    out = block(x)
    torch.testing.assert_close(out, torch.relu(block.shortcut(x)))
    assert out.abs().sum() > 0


def test_plain_block_with_zero_last_bn_loses_the_signal():
    # The same init kills a block without a shortcut: this is what the skip buys.
    torch.manual_seed(0)
    block = PlainBlock(8, 8).train()
    _zero_last_bn(block)
    assert torch.count_nonzero(block(torch.rand(2, 8, 6, 6))) == 0


def test_plain_and_residual_blocks_have_the_same_layers_without_projection():
    n_res = sum(p.numel() for p in ResidualBlock(8, 8).parameters())
    n_plain = sum(p.numel() for p in PlainBlock(8, 8).parameters())
    assert n_res == n_plain


def test_residual_block_passes_gradient_to_input_through_shortcut():
    torch.manual_seed(0)
    block = ResidualBlock(4, 4).train()
    _zero_last_bn(block)
    x = torch.rand(2, 4, 5, 5, requires_grad=True)
    block(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_residual_mlp_block_starts_as_identity_on_the_unnormalised_input():
    # Would fail if the residual were added to norm(x) instead of x.
    torch.manual_seed(0)
    block = ResidualMLPBlock(6, 12)
    x = 5 + 3 * torch.randn(4, 6)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    with torch.no_grad():
        block.mlp[-1].bias.fill_(1.0)
    torch.testing.assert_close(block(x), x + 1)
