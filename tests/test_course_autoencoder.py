"""The course's Exercise 1: its network (bottleneck, Keras init), and the "course vs ours" rows."""

import math

import pytest
import torch

from connlab.evidence import compare, reproduction
from connlab.experiments.section import (REPRODUCTION_HEADER, comparison_settles, reproduction_row,
                                         reproduction_settles)
from connlab.models.autoencoder import (COURSE_BOTTLENECK, AutoencoderConfig, DenoisingAutoencoder,
                                        count_parameters, sequential_autoencoder)


@pytest.mark.parametrize("skip, upsample, params", [
    ("none", "nearest", 185_873),      # the course's exercise notebook's model.summary()
    ("concat", "nearest", 260_177),    # the course's solution: both concatenation skips
    ("add", "nearest", 185_873),
    # Conv2DTranspose(128, kernel 2, stride 2) — the solution's "another option" — adds 128·128·4 + 128 weights
    # over UpSampling2D, and the second one 64·64·4 + 64
    ("none", "transpose", 185_873 + 65_664 + 16_448),
    ("concat", "transpose", 260_177 + 65_664 + 16_448),
])
def test_the_course_network_has_the_course_parameter_counts(skip, upsample, params):
    model = DenoisingAutoencoder(AutoencoderConfig(skip, upsample, bottleneck=COURSE_BOTTLENECK))
    assert count_parameters(model) == params
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    # the bottleneck is a 16-filter 3x3 conv at 7x7
    assert model.bottleneck.conv.weight.shape == (16, 128, 3, 3)


@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
def test_sequential_equals_functional_with_the_bottleneck(upsample):
    functional = DenoisingAutoencoder(AutoencoderConfig("none", upsample, bottleneck=16))
    sequential = sequential_autoencoder(upsample, bottleneck=16)
    with torch.no_grad():
        for dst, src in zip(sequential.parameters(), functional.parameters(), strict=True):
            dst.copy_(src)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(sequential(x), functional(x), atol=1e-6)


def test_keras_init_is_glorot_uniform_with_zero_biases_and_seeded():
    torch.manual_seed(0)
    keras = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16, init="keras"))
    torch.manual_seed(0)
    again = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16, init="keras"))
    torch.manual_seed(0)
    default = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16))
    convs = [m for m in keras.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    for conv in convs:
        fan_in = conv.in_channels * 9
        fan_out = conv.out_channels * 9
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = conv.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound   # fills Glorot's range
        assert torch.count_nonzero(conv.bias) == 0
    assert all(torch.equal(a, b) for a, b in zip(keras.parameters(), again.parameters()))
    # PyTorch's default draws uniform biases: the two inits differ
    assert any(torch.count_nonzero(m.bias) for m in default.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ValueError, match="init 'xavier'"):
        AutoencoderConfig(init="xavier")
    with pytest.raises(ValueError, match="bottleneck"):
        AutoencoderConfig(bottleneck=-1)


def test_reproduction_row_shows_course_mean_interval_n_verdict_and_gap():
    inside = reproduction(0.1652, [0.1640, 0.1660, 0.1650, 0.1670, 0.1630])
    row = reproduction_row("skip = none", inside.as_dict())
    assert len(row) == len(REPRODUCTION_HEADER)
    assert row[:3] == ["skip = none", "0.1652", "0.1650"]
    assert row[3] == f"{inside.low:.4f} to {inside.high:.4f}" and row[4] == "5"
    assert row[5] == "reproduced" and row[6] == "inside"
    outside = reproduction(0.1447, [0.1300, 0.1310, 0.1305, 0.1295, 0.1290])
    row = reproduction_row("skip = concat", outside)
    assert row[5] == "not reproduced" and row[6].endswith("above the interval")
    assert float(row[6].split()[0]) == pytest.approx(0.1447 - outside.high, abs=1e-4)
    assert reproduction_row("x", None)[1] == "not measured"             # an old run folder
    one = reproduction_row("x", reproduction(0.1652, [0.16]))
    assert one[3] == "no interval (n = 1)" and one[5] == "not reproduced"


def test_what_n_would_settle_it():
    far = reproduction(0.1447, [0.1300, 0.1340, 0.1320])   # 3 seeds: wide interval, far course figure
    text = reproduction_settles(far.as_dict())
    assert "settled at n = 3" in text or "would make it not reproduced" in text
    near = reproduction(0.1650, [0.1640, 0.1660, 0.1655])
    assert "stays inside" in reproduction_settles(near)
    assert "--seeds 5" in reproduction_settles(reproduction(0.1652, [0.16]))
    weak = compare([1.0, 1.1, 0.9], [0.95, 1.08, 0.86]).as_dict()   # effect −0.037, not settled by 3 pairs
    text = comparison_settles(weak)
    assert text.startswith("not settled at n = 3") and "would settle it" in text
    strong = compare([1.0, 1.1, 0.9, 1.05, 0.95], [0.5, 0.6, 0.4, 0.55, 0.45]).as_dict()
    assert comparison_settles(strong) == "settled at n = 5"
