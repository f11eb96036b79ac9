"""Recurrent cells and layers: parity with torch.nn with copied weights."""

import pytest
import torch
from torch import nn

from connlab.nn import GRU, RNN, GRUCell, RNNCell

ATOL = 1e-6


@pytest.mark.parametrize(("mine_cls", "torch_cls"), [(GRUCell, nn.GRUCell), (RNNCell, nn.RNNCell)])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch_with_copied_state_dict(mine_cls, torch_cls, bias):
    torch.manual_seed(0)
    ref = torch_cls(5, 7, bias=bias)
    mine = mine_cls(5, 7, bias=bias)
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in mine.state_dict().items()} == shapes
    mine.load_state_dict(ref.state_dict())
    x, h = torch.randn(4, 5), torch.randn(4, 7)
    torch.testing.assert_close(mine(x, h), ref(x, h), atol=ATOL, rtol=0)
    torch.testing.assert_close(mine(x), ref(x), atol=ATOL, rtol=0)  # zero initial state


@pytest.mark.parametrize("mine_cls", [GRUCell, RNNCell])
def test_cell_init_uses_torch_bound(mine_cls):
    torch.manual_seed(0)
    cell = mine_cls(3, 100)
    bound = 1 / 100**0.5
    for p in cell.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.9 * bound  # uniform over the whole range, not zeros


def test_gru_cell_update_gate_saturated_copies_state():
    # z -> 1 must copy h unchanged: the mechanism that carries memory.
    torch.manual_seed(0)
    cell = GRUCell(3, 4)
    with torch.no_grad():
        cell.bias_ih[4:8].fill_(100.0)  # the z block, second in order r, z, n
    h = torch.randn(2, 4)
    torch.testing.assert_close(cell(torch.randn(2, 3), h), h)


def _load_from_torch_layer(mine: nn.Module, ref: nn.Module) -> None:
    # torch.nn.GRU names "weight_ih_l0"; our single layer keeps its cell in "cell.".
    mine.load_state_dict({f"cell.{name.removesuffix('_l0')}": p for name, p in ref.state_dict().items()})


@pytest.mark.parametrize(("mine_cls", "torch_cls"), [(GRU, nn.GRU), (RNN, nn.RNN)])
def test_layer_matches_torch_batch_first(mine_cls, torch_cls):
    torch.manual_seed(0)
    ref = torch_cls(5, 6, batch_first=True)
    mine = mine_cls(5, 6)
    _load_from_torch_layer(mine, ref)
    x = torch.randn(3, 9, 5)
    h0 = torch.randn(3, 6)
    for init in (None, h0):
        out, h_last = mine(x, init)
        ref_out, ref_h = ref(x, None if init is None else init.unsqueeze(0))
        assert out.shape == (3, 9, 6) and h_last.shape == (3, 6)
        torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=0)
        torch.testing.assert_close(h_last, ref_h[0], atol=ATOL, rtol=0)
        torch.testing.assert_close(out[:, -1], h_last)


def test_layer_rejects_unbatched_or_empty_sequence():
    gru = GRU(5, 6)
    with pytest.raises(ValueError, match=r"\(B, L, I\).*\(9, 5\)"):
        gru(torch.randn(9, 5))
    with pytest.raises(ValueError, match=r"\(3, 0, 5\)"):
        gru(torch.randn(3, 0, 5))
