"""The course's noise and initialisation, against their definitions."""

import math

import pytest
import torch
from torch import nn

from connlab.data.noise import rounded_endpoint, salt_and_pepper
from connlab.nn.init import keras_init_


def test_salt_and_pepper_forces_a_quarter_each_and_keeps_half():
    x = torch.rand(1, 1, 300, 300, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.01
    y = salt_and_pepper(x.clone(), torch.Generator().manual_seed(0))
    zero, one, same = (y == 0).float().mean(), (y == 1).float().mean(), (y == x).float().mean()
    assert zero == pytest.approx(0.25, abs=0.01) and one == pytest.approx(0.25, abs=0.01)
    assert same == pytest.approx(0.5, abs=0.01)
    again = salt_and_pepper(x.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(y, again)


def test_rounded_endpoint_takes_integer_steps_and_clips():
    x = torch.full((1, 1, 100, 100), 0.25)
    y = rounded_endpoint(x, 1.0, "norm", torch.Generator().manual_seed(0))
    assert set(torch.unique(y).tolist()) <= {0.0, 0.25, 1.0}
    # P(|N(0,1)| < 0.5) = 0.383: that share of pixels stays
    assert (y == 0.25).float().mean().item() == pytest.approx(0.383, abs=0.02)


def test_keras_init_is_glorot_uniform_with_zero_bias():
    conv, dense = nn.Conv2d(64, 128, 3), nn.Linear(300, 10)
    keras_init_(nn.Sequential(conv, dense), torch.Generator().manual_seed(0))
    for layer, fan_in, fan_out in ((conv, 64 * 9, 128 * 9), (dense, 300, 10)):
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0
