"""Gates: logistic, product-gated, GLU, softmax mixture of experts."""

import pytest
import torch
import torch.nn.functional as F

from connlab.nn import GLU, LogisticGate, MixtureOfExperts, ProductGatedUnit, SoftmaxGate


def test_logistic_gate_is_sigmoid_of_linear_and_in_unit_interval():
    torch.manual_seed(0)
    gate = LogisticGate(5, 3)
    x = torch.randn(4, 5)
    g = gate(x)
    assert g.shape == (4, 3)
    assert torch.all((g > 0) & (g < 1))
    torch.testing.assert_close(g, torch.sigmoid(x @ gate.linear.weight.T + gate.linear.bias))


def _unit_with_identity_gate(h: str) -> ProductGatedUnit:
    # Gate pre-activation = x1 exactly, so x1 alone decides open or closed.
    unit = ProductGatedUnit(3, 3, h=h)
    with torch.no_grad():
        unit.gate.linear.weight.copy_(torch.eye(3))
        unit.gate.linear.bias.zero_()
    return unit


@pytest.mark.parametrize("h", ["logistic", "linear"])
def test_product_gated_unit_closed_gate_blocks_and_open_gate_passes(h):
    torch.manual_seed(0)
    unit = _unit_with_identity_gate(h)
    x2 = 3 * torch.randn(4, 3)
    h_x2 = torch.sigmoid(x2) if h == "logistic" else x2
    closed = unit(torch.full((4, 3), -60.0), x2)
    opened = unit(torch.full((4, 3), 60.0), x2)
    assert closed.abs().max() < 1e-20
    torch.testing.assert_close(opened, h_x2)
    # Half-open gate (σ(0) = 0.5) halves the signal: multiplicative, not additive.
    torch.testing.assert_close(unit(torch.zeros(4, 3), x2), 0.5 * h_x2)


def test_product_gated_unit_rejects_unknown_h():
    with pytest.raises(ValueError, match=r"\('logistic', 'linear'\).*'tanh'"):
        ProductGatedUnit(3, 3, h="tanh")


def test_glu_shape_and_matches_torch_glu():
    torch.manual_seed(0)
    glu = GLU(6, 4)
    x = torch.randn(2, 7, 6)
    y = glu(x)
    assert y.shape == (2, 7, 4)
    torch.testing.assert_close(y, F.glu(glu.linear(x), dim=-1))


def test_softmax_gate_rows_sum_to_one():
    torch.manual_seed(0)
    g = SoftmaxGate(5, 4)(torch.randn(8, 5))
    assert g.shape == (8, 4)
    assert torch.all(g > 0)
    torch.testing.assert_close(g.sum(dim=-1), torch.ones(8))


def test_mixture_of_experts_is_gate_weighted_sum_of_experts():
    torch.manual_seed(0)
    moe = MixtureOfExperts(5, 3, k=4)
    x = torch.randn(6, 5)
    out = moe(x)
    assert out.shape == (6, 3)
    g = torch.softmax(moe.gate.linear(x), dim=-1)
    expected = torch.zeros(6, 3)
    for i, expert in enumerate(moe.experts):
        expected += g[:, i : i + 1] * torch.tanh(expert[0](x))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(moe.last_gate, g)
    torch.testing.assert_close(moe.last_gate.sum(dim=-1), torch.ones(6))


def test_mixture_of_experts_with_saturated_gate_is_one_expert():
    torch.manual_seed(0)
    moe = MixtureOfExperts(5, 3, k=3)
    with torch.no_grad():
        moe.gate.linear.weight.zero_()
        moe.gate.linear.bias.copy_(torch.tensor([0.0, 100.0, 0.0]))
    x = torch.randn(4, 5)
    torch.testing.assert_close(moe(x), moe.experts[1](x))
