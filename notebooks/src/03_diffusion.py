# %% [markdown]
# # Exercise 3 — DDPM and DDIM: generating digits by repeated denoising
#
# Ho et al. (2020) noise a digit in T small Gaussian steps until nothing is left, train a network to undo it,
# and sample by running the reverse steps from pure noise. You write the two formulas this rests on:
#
# - the **forward process** q(x_t | x_0), which jumps from x_0 to any step t in one go:
#   x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε, with ε ~ N(0, I) and ᾱ_t = ∏_{s≤t} (1 − β_s);
# - one **DDIM step** (Song et al. 2021, η = 0) from x_t to the previous step, given the network's noise
#   estimate ε̂: first x̂_0 = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t, then x_{t−1} = √ᾱ_{t−1} · x̂_0 + √(1 − ᾱ_{t−1}) · ε̂.
#
# The lab's U-Net, schedule, trainer and sampler do the rest. To fit a CPU, diffusion runs in the 4×7×7 latent
# space of a small autoencoder (Rombach et al. 2022); your formulas do not care what x is.

# %%
import time

import torch
import torch.nn.functional as F

from connlab import plots
from connlab.data import load_dataset, to_unit, unit_to_signed
from connlab.diffusion import EMA, NoiseSchedule, diffusion_loss, ddim_timesteps, sample_ddim
from connlab.exercises import YourTurn, check_ddim_step, check_q_sample, show, start
from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig
from connlab.models.latent_ae import LatentAutoencoder
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("03_diffusion")

schedule = NoiseSchedule.cosine(1000).to(DEVICE)   # Nichol & Dhariwal's cosine ᾱ_t, T = 1000
alpha_bar = schedule.alpha_bar                     # (T,): ᾱ_t for t = 0 … T−1 (0-based, as in diffusers)
SIZES = {"tiny": dict(limit=256, ae_epochs=1, epochs=1, steps=5),
         "small": dict(limit=3000, ae_epochs=3, epochs=6, steps=50),
         "full": dict(limit=None, ae_epochs=16, epochs=40, steps=50)}
data = load_dataset(DATASET, limit=SIZES[SIZE]["limit"])
train = to_unit(data.train_images).to(DEVICE)            # (N, 1, 28, 28) in [0, 1]
print(f"{len(train)} training digits; ᾱ at t = 0, 250, 500, 750, 999:",
      ", ".join(f"{alpha_bar[t]:.3f}" for t in (0, 250, 500, 750, 999)))

# %% [markdown]
# ## 1. The forward process q(x_t | x_0)
#
# `t` holds one step per image, so pick each image's ᾱ with `alpha_bar[t]` and shape it to (B, 1, 1, 1) to
# broadcast over the image.

# %%
def q_sample(x0, t, eps, alpha_bar):
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.  x0, eps (B, C, H, W); t (B,) long; alpha_bar (T,)."""
    # ✎ Your turn: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε, with ᾱ_t = alpha_bar[t] reshaped to (B, 1, 1, 1)
    ### BEGIN SOLUTION
    ab = alpha_bar[t].view(-1, 1, 1, 1)              # (B, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    ### END SOLUTION


# %%
check_q_sample(q_sample)


# %%
x0 = unit_to_signed(to_unit(data.test_images[::125][:8])).to(DEVICE)   # (8, 1, 28, 28) in [−1, 1]
g = torch.Generator(DEVICE).manual_seed(0)
rows = []
for t in (0, 100, 250, 500, 750, 999):
    xt = q_sample(x0, torch.full((len(x0),), t, device=DEVICE), torch.randn(x0.shape, generator=g, device=DEVICE), alpha_bar)
    rows.append((f"t={t}, ᾱ={alpha_bar[t]:.3f}", ((xt + 1) / 2).clamp(0, 1)))
plots.image_rows(rows, OUT / "forward_process.png", "q(x_t | x_0), your forward process")
show(OUT / "forward_process.png")

# %% [markdown]
# ## 2. Train with your forward process
#
# The lab trains the small autoencoder first and standardises its latents; then every batch draws a step t per
# latent and a noise ε, noises the latents with **your** `q_sample`, and trains the lab's time-conditioned
# U-Net (residual blocks, self-attention) to predict v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022: steadier
# than predicting ε at the noisiest steps; the schedule converts it back to ε̂). EMA keeps an average of the
# weights for sampling.

# %%
size = SIZES[SIZE]
t0 = time.perf_counter()
ae = LatentAutoencoder().to(DEVICE)
fit(ae, lambda m, batch, g: m.loss(batch[0], g), (train,),
    TrainConfig(epochs=size["ae_epochs"], lr=2e-3, optimizer="adamw", compile="off", cuda_graph="off"), OUT / "autoencoder",
    label="latent autoencoder")
ae.eval().fit_latent_stats(train)
with torch.no_grad():
    z0 = torch.cat([ae.encode(x) for x in train.split(1000)])        # (N, 4, 7, 7), standardised


def diffusion_step_loss(model, batch, generator):
    (z,) = batch
    t = torch.randint(0, schedule.T, (len(z),), generator=generator, device=z.device)
    eps = torch.randn(z.shape, generator=generator, device=z.device)
    return diffusion_loss(model(q_sample(z, t, eps, alpha_bar), t), z, eps, t, schedule, "v")


# one level at 7×7 with self-attention: a quarter of the parameters of `connlab diffusion train`'s (1, 2) U-Net
levels = (1, 2) if SIZE == "full" else (1,)
unet = DiffusionUNet(DiffusionUNetConfig(in_channels=4, out_channels=4, base_channels=32, channel_mults=levels)).to(DEVICE)
ema = EMA(unet, 0.995)
fit(unet, diffusion_step_loss, (z0,), TrainConfig(epochs=size["epochs"], lr=2e-3, optimizer="adamw", lr_schedule="cosine",
                                                  warmup_steps=50, grad_clip=1.0, compile="off", cuda_graph="off"),
    OUT / "unet", ema=ema, label="latent DDPM")
net = ema.module.eval()
print(f"autoencoder and U-Net trained in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ## 3. One DDIM step
#
# DDIM (η = 0) is deterministic: from x_t it estimates the clean x̂_0, then re-noises it to the level of the
# previous step along the *same* predicted noise ε̂. Past the last step the previous ᾱ is 1 (the clean image).

# %%
def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev):
    """x_t (B, C, H, W), the network's ε̂ (same shape), ᾱ_t and ᾱ_{t−1} (floats) → x_{t−1}."""
    # ✎ Your turn: x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t, then x_{t−1} = √ᾱ_{t−1}·x̂_0 + √(1 − ᾱ_{t−1})·ε̂
    ### BEGIN SOLUTION
    x0_hat = (x_t - (1 - alpha_bar_t) ** 0.5 * eps_hat) / alpha_bar_t ** 0.5
    return alpha_bar_prev ** 0.5 * x0_hat + (1 - alpha_bar_prev) ** 0.5 * eps_hat
    ### END SOLUTION


# %%
check_ddim_step(ddim_step)

# %% [markdown]
# ## 4. Sample with your step — and with the lab's sampler
#
# Start from pure noise and take K DDIM steps (a sub-sequence of the T = 1000 steps). The same start through the
# lab's `sample_ddim` should land on the same digits.

# %%
K, n = size["steps"], 10
ab = schedule.alpha_bar_f64.tolist()
timesteps = ddim_timesteps(schedule.T, K).tolist()   # e.g. 980, 960, …, 0
x_T = torch.randn(n, 4, 7, 7, generator=torch.Generator(DEVICE).manual_seed(0), device=DEVICE)
x, states = x_T, [x_T]
with torch.no_grad():
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        v_hat = net(x, torch.full((n,), t, device=DEVICE))
        eps_hat = schedule.predict_eps(x, t, v_hat, "v")           # the network predicts v; the schedule gives ε̂
        x = ddim_step(x, eps_hat, ab[t], ab[t_prev] if t_prev >= 0 else 1.0)
        states.append(x)
    lab = sample_ddim(net, schedule, tuple(x_T.shape), K, 0.0, torch.Generator(DEVICE), prediction="v", clip=False, x_T=x_T)
    yours, theirs = ae.decode(x), ae.decode(lab)
print(f"your sampler vs the lab's sample_ddim, same start: largest pixel difference {(yours - theirs).abs().max():.2g}")
plots.image_rows([("your DDIM", yours), ("lab's DDIM", theirs)], OUT / "samples.png", f"DDIM-{K} from pure noise")
show(OUT / "samples.png")

# %% [markdown]
# ## 5. The trajectory: structure first, detail later
#
# Decode the states from x_T to x_0 at a few points along the way. The lecture: early steps give structure,
# late steps detail.

# %%
picks = sorted({round(i * K / 6) for i in range(7)})
with torch.no_grad():
    frames = [ae.decode(states[p]) for p in picks]                  # each (n, 1, 28, 28)
rows = [(f"sample {k}", torch.stack([f[k] for f in frames])) for k in range(4)]
plots.image_rows(rows, OUT / "trajectory.png", "x_T → x_0; columns = steps taken: " + ", ".join(map(str, picks)))
show(OUT / "trajectory.png")

# %% [markdown]
# ## Questions
#
# 1. In the trajectory, at which step does each digit's identity appear, and when its detail?
# 2. Take K = 5, 20, 100 DDIM steps from the same x_T: what changes, and what does not?
# 3. Compare with the ladder of Exercise 2: which differences (the top rung is pure noise; the network is told t;
#    it predicts the noise, not the image) let DDPM start from pure noise?
# 4. The full recipe — class-conditional guidance, more epochs, a quality score — is `connlab diffusion train`.
