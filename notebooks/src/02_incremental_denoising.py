# %% [markdown]
# # Exercise 2 — incremental denoising with T steps
#
# > *Set up the diffusion / incremental noise here; try changing T (`steps2use`).*
#
# Instead of one jump from a noisy digit to a clean one, build a **ladder**: x_0 is the clean digit and every
# rung adds a little noise, x_t = clip(x_{t−1} + (mag2use / steps2use)·z_t), for t = 1 … T (`steps2use`),
# z_t drawn from `dist2try` (`"norm"`: N(0, 1); `"uniform"`: U(−1, 1)). A network learns to step **down** one
# rung, x_t → x_{t−1}; applied T times, it walks from the top rung back to a digit — and, the real question,
# from pure noise to *what*? You set up the ladder and the training pairs; the lab supplies the U-Net of
# Exercise 1, the trainer and the pictures.

# %%
import time

import torch
import torch.nn.functional as F

from connlab import plots
from connlab.data import load_dataset, to_unit
from connlab.exercises import YourTurn, check_ladder_pairs, check_noise_rung, show, start
from connlab.metrics import psnr_per_image
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("02_incremental_denoising")

steps2use = 10     # T, the number of rungs — try changing T
dist2try = "norm"  # "norm" or "uniform"
mag2use = 1.0      # the rungs' noise scales add up to mag2use

SIZES = {"tiny": dict(limit=128, epochs=1), "small": dict(limit=2500, epochs=2), "full": dict(limit=None, epochs=10)}
data = load_dataset(DATASET, limit=SIZES[SIZE]["limit"])
train = to_unit(data.train_images).to(DEVICE)             # (N, 1, 28, 28) in [0, 1]
digits = to_unit(data.test_images[::100][:8]).to(DEVICE)  # 8 test digits to watch
print(f"{len(train)} training digits")

# %% [markdown]
# ## 1. One rung of the ladder
#
# Draw z with the `generator` you are given (so a run can be repeated), of the distribution `dist2try` and the
# shape of x, add it at scale `mag2use / steps2use`, and clip to [0, 1] as the lecture's notebook does with
# `np.clip`. For U(−1, 1): `torch.rand(...)` is U(0, 1).

# %%
def noise_rung(x, steps2use, mag2use, dist2try, generator):
    """One rung up: x_{t−1} (B, 1, 28, 28) in [0, 1] → x_t, same shape, clipped to [0, 1]."""
    # ✎ Your turn: draw z (N(0, 1) for "norm", U(−1, 1) for "uniform") with generator=generator, add it at scale mag2use / steps2use, clip to [0, 1]
    ### BEGIN SOLUTION
    if dist2try == "norm":
        z = torch.randn(x.shape, generator=generator, device=x.device)
    else:
        z = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1   # U(−1, 1)
    return (x + mag2use / steps2use * z).clamp(0, 1)
    ### END SOLUTION


# %%
check_noise_rung(noise_rung)


# %%
g = torch.Generator(DEVICE).manual_seed(0)
rungs = [digits]
for t in range(1, steps2use + 1):
    rungs.append(noise_rung(rungs[-1], steps2use, mag2use, dist2try, g))
plots.image_rows([(f"x_{t}", rungs[t]) for t in range(0, steps2use + 1, max(1, steps2use // 5))],
                 OUT / "ladder.png", f"the ladder, x_0 (clean) to x_{steps2use}")
show(OUT / "ladder.png")

# %% [markdown]
# ## 2. Training pairs, made on the fly
#
# The lecture's notebook stacks every rung of every digit into one big training set, N × (T+1) images (310 MB
# for the 9,000 embedded digits at T = 10). Here each batch makes its pairs fresh instead: climb t rungs from
# the clean batch and return the top two, **(x_t, x_{t−1})** — the network's input and its target. Watch the
# off-by-one: at t = 1 the target x_0 is the clean digit itself.

# %%
def ladder_pair(x0, t, steps2use, mag2use, dist2try, generator):
    """(x_t, x_{t−1}) for a batch x0 (B, 1, 28, 28) and one step t in 1 … steps2use."""
    # ✎ Your turn: climb from x0 with noise_rung so that x_prev is rung t−1 and x_t the rung above it; return (x_t, x_prev)
    ### BEGIN SOLUTION
    x_prev = x0
    for _ in range(t - 1):
        x_prev = noise_rung(x_prev, steps2use, mag2use, dist2try, generator)
    x_t = noise_rung(x_prev, steps2use, mag2use, dist2try, generator)
    return x_t, x_prev
    ### END SOLUTION


# %%
check_ladder_pairs(ladder_pair)

# %% [markdown]
# ## 3. Train the one-step denoiser
#
# The network is Exercise 1's U-Net (the lab's `DenoisingAutoencoder` with concatenation skips). Each batch draws
# one t, makes its pairs and learns x_t → x_{t−1} with BCE; it is not told t, so it must read the noise level
# from the image.

# %%
def train_ladder(steps2use):
    def loss_fn(model, batch, generator):
        (x0,) = batch
        t = int(torch.randint(1, steps2use + 1, (1,), generator=generator, device=x0.device))
        x_t, x_prev = ladder_pair(x0, t, steps2use, mag2use, dist2try, generator)
        return F.binary_cross_entropy_with_logits(model(x_t), x_prev)

    model = DenoisingAutoencoder(AutoencoderConfig("concat")).to(DEVICE)
    config = TrainConfig(epochs=SIZES[SIZE]["epochs"], batch_size=32, lr=1e-3, compile="off", cuda_graph="off")
    fit(model, loss_fn, (train,), config, OUT / f"ladder-T{steps2use}", label=f"ladder T={steps2use}")
    return model.eval()


t0 = time.perf_counter()
model = train_ladder(steps2use)
print(f"trained in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ## 4. Run the chain: from a noised digit, and from pure noise
#
# Start at the top rung x_T of a test digit and apply the network T times; then start from uniform random pixels.
# PSNR measures each step of the first chain against the clean digit.

# %%
@torch.no_grad()
def chain(model, x_top, steps2use):
    """x̂_T = x_top, x̂_{t−1} = net(x̂_t): the T + 1 states, top first."""
    states = [x_top]
    for _ in range(steps2use):
        states.append(torch.sigmoid(model(states[-1])))  # the net gives logits
    return states


def show_chains(model, steps2use):
    g = torch.Generator(DEVICE).manual_seed(1)
    x_top = digits
    for t in range(1, steps2use + 1):
        x_top = noise_rung(x_top, steps2use, mag2use, dist2try, g)
    from_digit = chain(model, x_top, steps2use)
    from_noise = chain(model, torch.rand(digits.shape, generator=g, device=DEVICE), steps2use)
    psnr = [psnr_per_image(x, digits).mean().item() for x in from_digit]
    print("PSNR against the clean digit, x_T → x̂_0:", " ".join(f"{p:.1f}" for p in psnr), "dB")
    shown = sorted(set(range(0, steps2use + 1, max(1, steps2use // 4))) | {steps2use})
    rows = [("clean x_0", digits)] + [(f"step {k}", from_digit[k]) for k in shown]
    rows += [(f"noise, step {k}", from_noise[k]) for k in shown]
    path = OUT / f"chains-T{steps2use}.png"
    plots.image_rows(rows, path, f"T = {steps2use}: the chain from a noised digit, then from pure noise")
    show(path)


show_chains(model, steps2use)

# %% [markdown]
# ## 5. Try changing T
#
# Set `steps2use` at the top to 3 or 20 and rerun the notebook, or train another ladder here:
# `show_chains(train_ladder(3), 3)`. With more, smaller rungs each step is easier — does the chain get better?
# What does the top rung look like (its noise std is mag2use/√T, not mag2use), and what does that mean for the
# chain started from pure noise?
#
# ## Questions
#
# 1. Does PSNR rise at every step of the chain? Where does it stop rising?
# 2. Started from pure noise, what does the chain produce, and why not digits? (Compare the top rung with
#    pure noise.)
# 3. What would change if the network were told t, or if the top rung were pure noise? (`connlab ladder
#    --condition learned`, `--schedule vp`; Exercise 3 is where this leads.)
