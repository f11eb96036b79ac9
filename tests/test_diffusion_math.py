"""Schedules, forward process, DDPM/DDIM steps and EMA: parity with diffusers and properties."""

import pytest
import torch
from torch import nn

from connlab.diffusion import (
    EMA,
    NoiseSchedule,
    ddim_step,
    ddim_timesteps,
    ddpm_step,
    diffusion_loss,
    guided,
    sample_ddim,
    sample_ddpm,
)

pytest.importorskip("diffusers")
from diffusers import DDIMScheduler, DDPMScheduler  # noqa: E402

T = 1000
SCHEDULES = {"linear": ("linear", NoiseSchedule.linear), "cosine": ("squaredcos_cap_v2", NoiseSchedule.cosine)}
PRED_NAMES = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}


def _schedule(name):
    return SCHEDULES[name][1](T)


def _tensors(seed, shape=(4, 1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g) * 2 - 1
    eps = torch.randn(shape, generator=g)
    out = torch.randn(shape, generator=g)
    return x0, eps, out


# --- parity with diffusers --------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_betas_and_alpha_bar_match_diffusers(name):
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=SCHEDULES[name][0])
    s = _schedule(name)
    torch.testing.assert_close(s.betas, ref.betas, atol=1e-5, rtol=0)
    torch.testing.assert_close(s.alphas, ref.alphas, atol=1e-5, rtol=0)
    torch.testing.assert_close(s.alpha_bar, ref.alphas_cumprod, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_q_sample_matches_add_noise(name):
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=SCHEDULES[name][0])
    s = _schedule(name)
    x0, eps, _ = _tensors(0)
    t = torch.tensor([0, 17, 500, 999])
    torch.testing.assert_close(s.q_sample(x0, t, eps), ref.add_noise(x0, eps, t), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.v_target(x0, eps, t), ref.get_velocity(x0, eps, t), atol=1e-5, rtol=0)


def _exact(ref):
    """Make a diffusers scheduler evaluate its own formulas in float64.

    diffusers recomputes β_t as 1 − ᾱ_t/ᾱ_{t−1} inside ``step``; in float32 that
    cancels catastrophically at small t (β_1 ≈ 1e-4 comes out with a ~1e-3
    relative error, moving x_{t−1} by ~3e-4).  Ours uses the stored β_t.  To test
    the formula rather than that rounding, the oracle runs in float64 from the
    same float32 betas.
    """
    ref.alphas_cumprod = torch.cumprod(1 - ref.betas.double(), dim=0)
    return ref


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_matches_diffusers(name, prediction, t):
    ref = _exact(
        DDPMScheduler(num_train_timesteps=T, beta_schedule=SCHEDULES[name][0], prediction_type=PRED_NAMES[prediction])
    )
    s = _schedule(name)
    x0, eps, out = _tensors(1)
    x_t = s.q_sample(x0, t, eps)
    # diffusers draws its variance noise as randn_tensor(shape, generator=g, dtype=model_output.dtype),
    # which on the CPU is torch.randn(shape, generator=g, dtype=...): same seed and dtype, same noise.
    g = torch.Generator().manual_seed(7)
    expected = ref.step(out.double(), t, x_t.double(), generator=g).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).float()
    got = ddpm_step(s, out, t, x_t, noise, prediction=prediction)
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-5)


def test_ddpm_step_float32_same_generator():
    # The plain float32 path, where rounding is harmless (t = 500): one seeded generator each.
    ref = DDPMScheduler(num_train_timesteps=T)
    s = _schedule("linear")
    x0, eps, out = _tensors(1)
    x_t = s.q_sample(x0, 500, eps)
    expected = ref.step(out, 500, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ddpm_step(s, out, 500, x_t, noise), expected, atol=1e-5, rtol=1e-5)


def test_ddpm_step_without_clipping_matches_diffusers():
    ref = _exact(DDPMScheduler(num_train_timesteps=T, clip_sample=False))
    s = _schedule("linear")
    x0, eps, out = _tensors(2)
    x_t = s.q_sample(x0, 10, eps) * 3  # far outside [-1, 1] so clipping would matter
    g = torch.Generator().manual_seed(3)
    expected = ref.step(out.double(), 10, x_t.double(), generator=g).prev_sample.float()
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).float()
    got = ddpm_step(s, out, 10, x_t, noise, clip=False)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, ddpm_step(s, out, 10, x_t, noise, clip=True))


@pytest.mark.parametrize("K", [1, 10, 50, 333, 1000])
def test_ddim_timesteps_match_diffusers(K):
    ref = DDIMScheduler(num_train_timesteps=T)
    ref.set_timesteps(K)
    assert torch.equal(ddim_timesteps(T, K), ref.timesteps)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_diffusers(name, prediction, eta):
    K = 50
    ref = _exact(
        DDIMScheduler(num_train_timesteps=T, beta_schedule=SCHEDULES[name][0], prediction_type=PRED_NAMES[prediction])
    )
    ref.set_timesteps(K)
    s = _schedule(name)
    x0, eps, out = _tensors(4)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    timesteps = ddim_timesteps(T, K).tolist()
    for i in [0, 25, K - 1]:  # first, middle and last step (last goes to ᾱ = 1)
        t = timesteps[i]
        t_prev = timesteps[i + 1] if i + 1 < K else -1
        x_t = s.q_sample(x0, t, eps)
        vn = noise.double() if eta > 0 else None
        expected = ref.step(out.double(), t, x_t.double(), eta=eta, variance_noise=vn).prev_sample.float()
        got = ddim_step(s, out, t, t_prev, x_t, eta=eta, noise=noise, prediction=prediction)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# --- properties --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_strictly_decreasing_in_unit_interval(name):
    ab = _schedule(name).alpha_bar
    assert bool((ab[1:] < ab[:-1]).all())
    assert bool(((ab > 0) & (ab < 1)).all())


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_forward_process_mean_and_variance(t):
    s = _schedule("linear")
    x0 = torch.linspace(-1, 1, 16).view(1, 1, 4, 4)
    n = 20_000
    g = torch.Generator().manual_seed(0)
    eps = torch.randn((n, 1, 4, 4), generator=g)
    x_t = s.q_sample(x0.expand(n, -1, -1, -1), t, eps)
    ab = s.alpha_bar[t]
    # standard error of the mean is sqrt((1 - ab) / n) <= 0.0071; 5 sigma
    torch.testing.assert_close(x_t.mean(0), ab.sqrt() * x0[0], atol=0.036, rtol=0)
    torch.testing.assert_close(x_t.var(0), (1 - ab).expand(1, 4, 4), atol=0.05 * (1 - ab).item() + 1e-6, rtol=0)


def test_predictions_invert_each_other():
    s = _schedule("cosine")
    x0, eps, _ = _tensors(6)
    t = torch.tensor([0, 10, 500, 990])
    x_t = s.q_sample(x0, t, eps)
    for prediction in ["eps", "x0", "v"]:
        out = s.target(x0, eps, t, prediction)
        torch.testing.assert_close(s.predict_x0(x_t, t, out, prediction), x0, atol=2e-4, rtol=0)
        torch.testing.assert_close(s.predict_eps(x_t, t, out, prediction), eps, atol=2e-4, rtol=0)
        assert diffusion_loss(out, x0, eps, t, s, prediction).item() < 1e-10


def test_diffusion_loss_target_and_bad_prediction():
    s = _schedule("linear")
    x0, eps, out = _tensors(7)
    t = torch.tensor([1, 2, 3, 4])
    assert torch.isclose(diffusion_loss(out, x0, eps, t, s, "eps"), ((out - eps) ** 2).mean())
    with pytest.raises(ValueError, match="'noise'"):
        diffusion_loss(out, x0, eps, t, s, "noise")


def _toy_model(x, t):
    return 0.1 * x + 1e-4 * t.float().view(-1, 1, 1, 1)


def test_ddim_eta0_deterministic():
    # With η = 0 the only randomness is x_T: from the same x_T, two different
    # generators give the same x_0; with η > 0 they do not.
    s = NoiseSchedule.linear(100)
    shape = (2, 1, 4, 4)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    run = lambda eta, seed: sample_ddim(  # noqa: E731
        _toy_model, s, shape, 10, eta, torch.Generator().manual_seed(seed), x_T=x_T
    )
    assert torch.equal(run(0.0, 1), run(0.0, 2))
    assert not torch.equal(run(0.5, 1), run(0.5, 2))


def test_ddim_eta_positive_uses_generator():
    s = NoiseSchedule.linear(100)
    shape = (2, 1, 4, 4)
    a = sample_ddim(_toy_model, s, shape, 10, 1.0, torch.Generator().manual_seed(1))
    b = sample_ddim(_toy_model, s, shape, 10, 1.0, torch.Generator().manual_seed(1))
    c = sample_ddim(_toy_model, s, shape, 10, 1.0, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_ddpm_reproducible_and_trajectory_shape():
    s = NoiseSchedule.linear(20)
    shape = (3, 1, 4, 4)
    a = sample_ddpm(_toy_model, s, shape, torch.Generator().manual_seed(0))
    traj = sample_ddpm(_toy_model, s, shape, torch.Generator().manual_seed(0), return_trajectory=True)
    assert traj.shape == (21, *shape)
    assert torch.equal(traj[-1], a)
    assert a.abs().max() <= 1.5  # clipped x̂_0 keeps samples near [-1, 1]


@pytest.mark.parametrize("steps", [0, -3, 101])
def test_bad_steps_raise(steps):
    s = NoiseSchedule.linear(100)
    with pytest.raises(ValueError, match=str(steps)):
        sample_ddim(_toy_model, s, (1, 1, 2, 2), steps, 0.0, torch.Generator())


def test_bad_eta_raises():
    s = NoiseSchedule.linear(100)
    with pytest.raises(ValueError, match="-0.5"):
        sample_ddim(_toy_model, s, (1, 1, 2, 2), 10, -0.5, torch.Generator())


def test_guided_convention():
    def model(x, t, y):
        return torch.zeros_like(x) if y is None else torch.ones_like(x)

    x, t, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), torch.tensor([3, 4])
    assert torch.equal(guided(model, y, 0.0)(x, t), torch.ones_like(x))  # w = 0: conditional
    assert torch.equal(guided(model, y, 2.0)(x, t), 3 * torch.ones_like(x))  # (1 + w)·1 − w·0


def test_schedule_to_moves_tensors():
    s = NoiseSchedule.cosine(10).to("cpu")
    assert s.device.type == "cpu" and s.alpha_bar.device.type == "cpu"


# --- EMA ----------------------------------------------------------------------------------


class _WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.bn = nn.BatchNorm1d(3)


def test_ema_averages_parameters_and_copies_buffers():
    torch.manual_seed(0)
    model = _WithBuffer()
    ema = EMA(model, decay=0.9, warmup=False)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.bn(torch.randn(8, 3) * 5 + 2)  # train mode: updates the running statistics
    ema.update()
    for p_s, p0, p in zip(ema.module.parameters(), start, model.parameters()):
        torch.testing.assert_close(p_s, 0.9 * p0 + 0.1 * p)  # moved 10 % of the way
    for b_s, b in zip(ema.module.buffers(), model.buffers()):
        assert torch.equal(b_s, b)  # running mean/var and num_batches_tracked copied, not averaged
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_warmup_and_state_round_trip():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.999)
    assert ema.decay_t() == pytest.approx(0.1)  # (1 + 0)/(10 + 0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    w0 = ema.module.weight.detach().clone()
    ema.update()  # shadow moves 90 % of the way at the first update
    torch.testing.assert_close(ema.module.weight, 0.1 * w0 + 0.9 * torch.ones(2, 2))
    assert ema.decay_t() == pytest.approx(2 / 11)
    ema.num_updates = 100_000
    assert ema.decay_t() == pytest.approx(0.999)  # capped once (1+n)/(10+n) > decay

    other = EMA(nn.Linear(2, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == ema.num_updates and other.decay == 0.999
    target = nn.Linear(2, 2)
    other.copy_to(target)
    assert torch.equal(target.weight, ema.module.weight)
