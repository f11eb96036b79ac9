"""The time-conditioned diffusion U-Net: shapes, initialisation, conditioning, learning."""

import dataclasses

import pytest
import torch

from connlab.diffusion import NoiseSchedule, diffusion_loss, guided, sample_ddim
from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig, timestep_embedding

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are tiny: intra-op threads cost more in synchronisation than
    # they save (10× slower with 2 threads on the 2-core CI machine).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = DiffusionUNetConfig(base_channels=8, channel_mults=(1, 2), num_heads=2, norm_groups=4, dropout=0.0)


def _randomise_final_conv(model):
    with torch.no_grad():
        model.out_conv.weight.normal_(0, 0.1)


@pytest.mark.parametrize(
    "cfg, shape",
    [
        (DiffusionUNetConfig(), (2, 1, 28, 28)),  # 28 → 14 → 7, attention at 7×7
        (DiffusionUNetConfig(in_channels=4, out_channels=4, channel_mults=(1,)), (2, 4, 7, 7)),  # latent, all 7×7
        (DiffusionUNetConfig(in_channels=4, out_channels=4, channel_mults=(1, 2)), (2, 4, 7, 7)),  # 7 → 4 → 7
    ],
)
def test_output_shape(cfg, shape):
    model = DiffusionUNet(cfg)
    _randomise_final_conv(model)
    out = model(torch.randn(shape), torch.tensor([0, 999]))
    assert out.shape == shape
    assert out.abs().sum() > 0


def test_attention_sits_at_lowest_resolution():
    seen = []
    model = DiffusionUNet(DiffusionUNetConfig())
    hook = lambda mod, inp, out: seen.append(tuple(out.shape[-2:]))  # noqa: E731
    for m in model.modules():
        if type(m).__name__ == "SelfAttention2d":
            m.register_forward_hook(hook)
    model(torch.randn(1, 1, 28, 28), torch.tensor([5]))
    assert seen and set(seen) == {(7, 7)}


def test_zero_init_output_is_exactly_zero():
    model = DiffusionUNet(DiffusionUNetConfig())
    out = model(torch.randn(3, 1, 28, 28), torch.tensor([1, 50, 999]))
    assert torch.equal(out, torch.zeros_like(out))


def test_float_and_scalar_time_accepted():
    model = DiffusionUNet(TINY).eval()
    _randomise_final_conv(model)
    x = torch.randn(2, 1, 28, 28)
    a = model(x, torch.tensor([7, 7]))
    torch.testing.assert_close(model(x, torch.tensor([7.0, 7.0])), a)
    torch.testing.assert_close(model(x, torch.tensor(7)), a)


def test_timestep_embedding_shape_and_distinct():
    e = timestep_embedding(torch.tensor([0, 1, 500]), 16)
    assert e.shape == (3, 16)
    assert not torch.allclose(e[1], e[2])


def test_class_conditional_path_and_null_label():
    cfg = dataclasses.replace(TINY, num_classes=10)
    model = DiffusionUNet(cfg).eval()
    _randomise_final_conv(model)
    assert model.null_class == 10
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 10])
    out3 = model(x, t, torch.tensor([3, 3]))
    out4 = model(x, t, torch.tensor([4, 4]))
    assert not torch.allclose(out3, out4)
    torch.testing.assert_close(model(x, t, None), model(x, t, torch.tensor([10, 10])))  # None = ∅
    eps = guided(model, torch.tensor([3, 3]), 2.0)(x, t)
    torch.testing.assert_close(eps, 3 * out3 - 2 * model(x, t))
    with pytest.raises(ValueError, match="num_classes"):
        DiffusionUNet(TINY)(x, t, torch.tensor([1, 2]))


def test_time_embedding_changes_output_after_one_step():
    torch.manual_seed(0)
    model = DiffusionUNet(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4, 1, 28, 28)
    loss = (model(x, torch.tensor([1, 200, 500, 900])) - torch.randn_like(x)).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        a = model(x, torch.full((4,), 10))
        b = model(x, torch.full((4,), 900))
    assert (a - b).abs().max() > 1e-6


def test_bad_config_raises():
    with pytest.raises(ValueError, match="norm_groups"):
        DiffusionUNetConfig(base_channels=10, norm_groups=8)
    with pytest.raises(ValueError, match="channel_mults"):
        DiffusionUNetConfig(channel_mults=())


def test_tiny_config_overfits_one_batch():
    # A fixed batch of 8 (x_0, t, ε) triples: ε-prediction loss starts at E‖ε‖² ≈ 1
    # (the zero-initialised output) and must fall at least 10× within 100 Adam steps (it reaches ~1e-3).
    # 16×16 blobs keep it to seconds on 2 CPU cores; the network is size-agnostic.
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    schedule = NoiseSchedule.linear(1000)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centres = torch.randint(4, 12, (8, 2), generator=g).float()
    d2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
    x0 = (torch.exp(-d2 / 8.0) * 2 - 1).unsqueeze(1)  # (8, 1, 16, 16) blobs in [-1, 1]
    eps = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    x_t = schedule.q_sample(x0, t, eps)

    model = DiffusionUNet(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = diffusion_loss(model(x_t, t), x0, eps, t, schedule, "eps")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(eps.pow(2).mean().item(), rel=1e-6)
    print(f"overfit: loss {losses[0]:.3f} -> {losses[-1]:.4f}")
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_sampling_with_the_network_runs():
    model = DiffusionUNet(TINY).eval()
    x = sample_ddim(lambda x, t: model(x, t), NoiseSchedule.cosine(100), (2, 1, 28, 28), 5, 0.0, torch.Generator())
    assert x.shape == (2, 1, 28, 28) and torch.isfinite(x).all()
