# %% [markdown]
# # Exercise 2 — incremental denoising with T steps
#
# > *Set up the diffusion / incremental noise here; try changing T (`steps2use`).*
#
# This is the course's diffusion notebook (`C24_MNIST_AE_diffusion_v3`), in PyTorch. Instead of one jump from
# a noisy digit to a clean one, build a **ladder**: for each clean digit x_0 draw **one** noisy end point
# x_T, and put T rungs (`steps2use`) on the straight line between them. A network learns to step **down**
# one rung, x_i → x_{i−1}; applied again and again, it walks a noisy digit back — and, the real question,
# pure noise to *what*? You write the end point, the rungs and the training pairs; the lab supplies
# Exercise 1's U-Net (with the course's bottleneck), the trainer and the pictures.

# %%
import time

import torch
import torch.nn.functional as F

from connlab import plots
from connlab.data import to_unit
from connlab.data.course import load_course_data
from connlab.exercises import YourTurn, check_end_point, check_rung, check_training_pairs, show, start
from connlab.metrics import psnr_per_image
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("02_incremental_denoising")

steps2use = 10     # T, the number of rungs — try changing T
dist2try = "norm"  # "norm": z ~ N(0, 1); "uniform": z ~ U(−1, 1)
mag2use = 1.0      # the end point's noise magnitude

# small: the course's 1,000 training and 100 test digits; of its 20 epochs of 11,000 pairs, 3 here
SIZES = {"tiny": dict(n_train=32, n_test=8, epochs=1), "small": dict(n_train=1000, n_test=100, epochs=3),
         "full": dict(n_train=1000, n_test=100, epochs=20)}
course = load_course_data(n_train=SIZES[SIZE]["n_train"], n_validation=SIZES[SIZE]["n_test"])
X_train = to_unit(course.data.train_images).to(DEVICE)   # (N, 1, 28, 28) in [0, 1]
X_test = to_unit(course.data.test_images).to(DEVICE)
newN = X_train.shape[0] * (steps2use + 1)                 # the course's size of the training set
print(f"{len(X_train)} training digits → newN = {newN:,} training pairs; {len(X_test)} test digits")

# %% [markdown]
# ## 1. The end point
#
# x_T = clip(x_0 + round(mag2use · z), 0, 1), with z drawn from `dist2try` in the shape of x_0, using the
# `generator` you are given (so a run can be repeated). Rounding makes the step a whole number: a pixel
# stays, or is pushed to 0 or to 1 — salt and pepper again, more of it the larger `mag2use`.
# `torch.rand(...)` is U(0, 1); U(−1, 1) is `2 * torch.rand(...) - 1`.

# %%
def end_point(x0, mag2use, dist2try, generator):
    """x_T for every digit of x0 (B, 1, 28, 28) in [0, 1]: same shape, in [0, 1]."""
    # ✎ Your turn: draw z (N(0, 1) for "norm", U(−1, 1) for "uniform") with generator=generator, add round(mag2use · z) to x0, clip to [0, 1]
    ### BEGIN SOLUTION
    if dist2try == "norm":
        z = torch.randn(x0.shape, generator=generator, device=x0.device)
    else:
        z = torch.rand(x0.shape, generator=generator, device=x0.device) * 2 - 1   # U(−1, 1)
    return (x0 + torch.round(mag2use * z)).clamp(0, 1)
    ### END SOLUTION


# %%
check_end_point(end_point)

# %% [markdown]
# ## 2. The rungs, on the straight line
#
# Rung i blends the two images: x_i = x_0 + (i / T) · (x_T − x_0), so rung 0 is the clean digit and rung T
# the end point. No new noise is drawn along the way (the course's process is not a random walk).

# %%
def rung(x0, x_T, i, steps2use):
    """Rung i (0 … steps2use) between x0 and x_T, both (B, 1, 28, 28)."""
    # ✎ Your turn: x_i = x_0 + (i / steps2use)·(x_T − x_0)
    ### BEGIN SOLUTION
    return x0 + (i / steps2use) * (x_T - x0)
    ### END SOLUTION


# %%
check_rung(rung)

# %%
x_T = end_point(X_test[:8], mag2use, dist2try, torch.Generator(DEVICE).manual_seed(0))
shown = sorted({round(k * steps2use / 5) for k in range(6)})
plots.image_rows([(f"x_{i}", rung(X_test[:8], x_T, i, steps2use)) for i in shown], OUT / "ladder.png",
                 f"the ladder, x_0 (clean) to x_{steps2use}")
show(OUT / "ladder.png")

# %% [markdown]
# ## 3. The training pairs
#
# Every rung but the bottom one is an input whose target is the rung just below: x_i → x_{i−1} for
# i = 1 … T. The course adds one more pair per digit, x_0 → x_0 ("nothing left to remove"), so the
# training set holds `newN = N · (steps2use + 1)` pairs. Keep each pair within one digit.

# %%
def training_pairs(x0, x_T, steps2use):
    """(inputs, targets), each (N·(steps2use + 1), 1, 28, 28), from x0 and x_T (N, 1, 28, 28)."""
    # ✎ Your turn: build the rungs with rung(...), then inputs x_0, x_1 … x_T and targets x_0, x_0 … x_{T−1}
    ### BEGIN SOLUTION
    rungs = [rung(x0, x_T, i, steps2use) for i in range(steps2use + 1)]
    inputs = torch.cat([rungs[0]] + rungs[1:])        # x_0, then x_1 … x_T
    targets = torch.cat([rungs[0]] + rungs[:-1])      # x_0, then x_0 … x_{T−1}
    return inputs, targets
    ### END SOLUTION


# %%
check_training_pairs(training_pairs)

# %%
g = torch.Generator(DEVICE).manual_seed(1)
inputs, targets = training_pairs(X_train, end_point(X_train, mag2use, dist2try, g), steps2use)
test_inputs, test_targets = training_pairs(X_test, end_point(X_test, mag2use, dist2try, g), steps2use)
print(f"{len(inputs):,} training pairs (newN = {newN:,}), {len(test_inputs):,} test pairs")

# %% [markdown]
# ## 4. Train the one-step denoiser
#
# The network is Exercise 1's U-Net with the course's 16-filter bottleneck and Keras' initialisation. It
# learns x_i → x_{i−1} with binary cross-entropy (Adam, batch 128); it is not told i, so it must read the
# noise level from the image.

# %%
def loss_fn(model, batch, generator):
    x_i, x_below = batch
    return F.binary_cross_entropy_with_logits(model(x_i), x_below)


model = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16, init="keras")).to(DEVICE)
config = TrainConfig(epochs=SIZES[SIZE]["epochs"], batch_size=128, lr=1e-3, compile="off", cuda_graph="off")
t0 = time.perf_counter()
fit(model, loss_fn, (inputs, targets), config, OUT / f"ladder-T{steps2use}", label=f"ladder T={steps2use}")
model.eval()
with torch.no_grad():
    test_bce = sum(F.binary_cross_entropy_with_logits(model(a), b, reduction="sum").item()
                   for a, b in zip(test_inputs.split(500), test_targets.split(500))) / test_targets.numel()
print(f"trained in {time.perf_counter() - t0:.0f} s; test BCE {test_bce:.4f} (the course: 0.1839 for T = 10, "
      "norm, mag 1, 20 epochs)")

# %% [markdown]
# ## 5. Feed the outputs back
#
# As the course does: take a test digit at rung 7, run it through the network, then feed the output back
# in, 15 more times, and look at every pass. Then start from completely random pixels.

# %%
@torch.no_grad()
def feed_back(model, x, passes):
    """[x, net(x), net(net(x)), …]: passes + 1 images (B, 1, 28, 28)."""
    states = [x]
    for _ in range(passes):
        states.append(torch.sigmoid(model(states[-1])))   # the network gives logits
    return states


start_rung = min(7, steps2use)
x_start = rung(X_test[:8], x_T, start_rung, steps2use)
from_digit = feed_back(model, x_start, 16)
from_noise = feed_back(model, torch.rand(x_start.shape, generator=g, device=DEVICE), 16)
psnr = [psnr_per_image(x, X_test[:8]).mean().item() for x in from_digit]
print(f"PSNR against the clean digit, rung {start_rung} then 16 passes:", " ".join(f"{p:.1f}" for p in psnr), "dB")
picks = [0, 1, 2, 4, 8, 16]
rows = [("clean x_0", X_test[:8])] + [(f"pass {k}", from_digit[k]) for k in picks]
rows += [(f"random, pass {k}", from_noise[k]) for k in picks]
plots.image_rows(rows, OUT / "feedback.png", f"rung {start_rung} fed back, then random pixels fed back")
show(OUT / "feedback.png")

# %% [markdown]
# ## Questions
#
# 1. Does PSNR rise at every pass? Where does it stop rising, and what does the digit look like after 16?
# 2. Does a smaller number of steps still work? Set `steps2use = 3` at the top and rerun the notebook.
# 3. What would happen if the input was completely random? Compare the rows started from random pixels with
#    the end points x_T: what did the network learn to expect at the top rung?
# 4. What would change if the network were told i, or if the top rung were pure noise? (`connlab ladder
#    --preset course` runs this protocol over seeds; `connlab ladder --schedule vp` and Exercise 3 are
#    where this leads.)
