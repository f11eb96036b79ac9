"""connlab.seeds: K seeds trained together follow the K runs trained one by one."""

import pytest
import torch
import torch.nn.functional as F

from connlab.errors import UserError
from connlab.seeds import SeedGroup, per_copy_mean

SEEDS = [0, 1, 2]
STEPS = 8


def optimizer(params):
    # SGD with momentum, not Adam: Adam divides by √v, so where a weight's gradient is near 0 it turns the
    # last-bit differences of a batched matmul into ~1e-5 steps (seen on one Xeon: 1 weight of 12,544), which
    # would test the CPU's rounding rather than the grouping. Equal gradients give equal SGD steps.
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def batches(seed, shape, classes=None):
    g = torch.Generator().manual_seed(100 + seed)
    x = [torch.rand(shape, generator=g) for _ in range(STEPS)]
    y = [torch.randint(0, classes, (shape[0],), generator=g) if classes else torch.randn(shape[0], generator=g)
         for _ in range(STEPS)]
    return x, y


def train_alone(make, seed, loss, shape, classes):
    torch.manual_seed(seed)
    model = make()
    opt = optimizer(model.parameters())
    xs, ys = batches(seed, shape, classes)
    for x, y in zip(xs, ys):
        opt.zero_grad()
        loss(model(x), y).mean().backward()
        opt.step()
    return model


def train_together(make, loss, shape, classes):
    group = SeedGroup(make, SEEDS)
    opt = optimizer(group.parameters())
    data = [batches(s, shape, classes) for s in SEEDS]
    for i in range(STEPS):
        x = torch.stack([d[0][i] for d in data])
        y = torch.stack([d[1][i] for d in data])
        opt.zero_grad()
        out = group(x)
        per_copy_mean(loss(out.flatten(0, 1), y.flatten(0, 1)).view(len(SEEDS), -1)).sum().backward()
        opt.step()
    return group


def mlp():
    from connlab.experiments.skipmlp import make_mlp

    return make_mlp("skip", 16, 2)


def gru():
    from connlab.experiments.rnn import make_regressor

    return make_regressor("gru", 8)


@pytest.mark.parametrize("make, shape, classes, loss", [
    (mlp, (16, 1, 28, 28), 10, lambda out, y: F.cross_entropy(out, y, reduction="none")),
    (gru, (16, 5, 2), None, lambda out, y: (out - y) ** 2),
])
def test_group_follows_each_seed_trained_alone(make, shape, classes, loss):
    group = train_together(make, loss, shape, classes)
    x = torch.rand(4, *shape[1:])
    for k, seed in enumerate(SEEDS):
        alone = train_alone(make, seed, loss, shape, classes)
        together = group.module(k)
        for (name, a), b in zip(alone.state_dict().items(), together.state_dict().values()):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)
        torch.testing.assert_close(alone(x), together(x), atol=2e-5, rtol=1e-4)
    # the copies really differ (different seeds), so the check above is not vacuous
    assert not torch.allclose(group.module(0)(x), group.module(1)(x))


def test_group_refuses_batchnorm_running_statistics():
    with pytest.raises(UserError, match="BatchNorm2d keeps running statistics"):
        SeedGroup(lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)), [0, 1])
