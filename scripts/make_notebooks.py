"""Write the lecture's exercise notebooks and their solutions from one source, without outputs.

    python scripts/make_notebooks.py [--out DIR]

``DIR/0N_*.ipynb`` are the exercises, ``DIR/solutions/0N_*.ipynb`` the same notebooks filled in
(default DIR: ``notebooks/``). Both come from the cells below: a code cell marks the student's
part as::

    # >>> your turn: what to write, in one sentence
    ...the solution's lines...
    # <<<

The exercise gets ``raise YourTurn("what to write ...")`` in its place (a one-line message, not a
traceback), the solution keeps the lines under a ``# ✎ Your turn: what to write ...`` comment. So
the two never drift, and regenerating gives byte-identical files (the tests check that the stored
ones match).

The notebooks hold the lecture's ideas; the lab supplies data (``connlab.data``), the trainer
(``connlab.train.fit``), networks, samplers, metrics, figures and the checks
(``connlab.exercises``). ``CONNLAB_NB_SIZE`` sets the size: ``tiny`` (seconds, for the tests),
``small`` (the default, a few minutes on 2 CPU cores) or ``full`` (a GPU).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

BEGIN = re.compile(r"^(?P<indent>\s*)# >>> your turn: (?P<message>.+)$")
END = re.compile(r"^\s*# <<<$")

INSTALL = '''# Installs connlab where it is missing (Colab, a cluster's Jupyter); in a set-up clone it does nothing.
try:
    import connlab
except ImportError:
    import os, pathlib
    clone = next((p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "src" / "connlab").is_dir()), None)
    source = os.environ.get("CONNLAB_SOURCE") or clone   # CONNLAB_SOURCE: the lab's folder or git URL
    if source is None:
        raise RuntimeError("connlab is not installed: set CONNLAB_SOURCE to the lab's folder or git URL and rerun")
    %pip install -q "{source}"
    import importlib
    importlib.invalidate_caches()   # let this kernel see the freshly installed package
    import connlab'''

SETUP = '''import os, time
from pathlib import Path

import torch
from IPython.display import Image, display

from connlab.train import pick_device

# One knob for the size: tiny (seconds, for the tests), small (a few minutes on 2 CPU cores), full (a GPU).
SIZE = os.environ.get("CONNLAB_NB_SIZE", "small")
DEVICE = pick_device()   # a GPU when there is one
OUT = Path(os.environ.get("CONNLAB_NB_OUT", "runs/notebooks")) / f"{NAME}-{SIZE}-{time.strftime('%Y%m%d-%H%M%S')}"
OUT.mkdir(parents=True, exist_ok=True)
DATASET = "mnist" if SIZE == "full" else "mnist-embedded"   # embedded: 9,000 real digits shipped with the lab
torch.manual_seed(0)
# The training cells call fit with compile="off", cuda_graph="off": a CUDA graph would freeze the Python
# loops of your code (a loop over t), and these runs are too short for compiling to pay off.
print(f"size {SIZE}, device {DEVICE}, files under {OUT}")


def show(path):
    display(Image(filename=str(path)))'''



AUTOENCODER = [
    ("md", """# Exercise 1 — a denoising autoencoder, then skip connections with concatenation

> *MNIST autoencoder, reconstruct digits from noisy inputs — add skip connections with concatenation;
> make sure you see how the outputs from encoding layers are matched up to inputs for decoding layers
> (14×14 encoding maps concatenated with 14×14 decoding maps).*

You write the network twice: first the **Sequential** way (a straight chain of layers), then the
**Functional** way — a module whose `forward` wires a graph, which is what a skip connection needs. The lab
supplies the data, the trainer (`connlab.train.fit`), the metrics and the pictures; `connlab.exercises`
checks your pieces and says in one sentence what is wrong. Where a cell says **Your turn**, replace the
`raise YourTurn(...)` line with your code."""),
    ("code", """import torch.nn.functional as F
from torch import nn
from torchinfo import summary

from connlab import plots
from connlab.data import corrupt, load_dataset, to_unit
from connlab.exercises import YourTurn, check_encoder_decoder, check_skip_autoencoder
from connlab.metrics import image_metrics
from connlab.train import TrainConfig, fit

SIZES = {"tiny": dict(limit=128, epochs=1), "small": dict(limit=2500, epochs=1), "full": dict(limit=None, epochs=10)}
NOISE = 0.5   # x + 0.5·N(0, 1), clipped to [0, 1]: the noisy digits to clean up
data = load_dataset(DATASET, limit=SIZES[SIZE]["limit"])
train = to_unit(data.train_images).to(DEVICE)                           # (N, 1, 28, 28) in [0, 1]
clean = to_unit(data.test_images[:500]).to(DEVICE)                      # a fixed test set ...
noisy = corrupt(clean, NOISE, "norm", torch.Generator(DEVICE).manual_seed(1234))   # ... and its noisy copy
print(f"{len(train)} training digits; test: {len(clean)} noisy/clean pairs")
plots.image_rows([("clean", clean[:10]), ("noisy", noisy[:10])], OUT / "data.png", "what the network gets and what it should give")
show(OUT / "data.png")"""),
    ("md", """## 1. The Sequential way

The lecture's encoder: **Conv 64 → pool → Conv 128 → pool** (28×28 → 14×14 → 7×7); its decoder mirrors it:
**Conv 128 → up → Conv 64 → up → Conv 1** (7×7 → 14×14 → 28×28). Every convolution is 3×3 with
`padding=1` (Keras' `padding="same"`) and a ReLU, except the last, which gives one channel of *logits*
(the loss is BCE with logits; a sigmoid turns them into pixels only for pictures). Pooling is
`nn.MaxPool2d(2)`, upsampling `nn.Upsample(scale_factor=2)`. A straight chain like this is one
`nn.Sequential` — Keras' Sequential API."""),
    ("code", """encoder = nn.Sequential(
    nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 28×28×64 → 14×14×64
    nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 14×14×128 → 7×7×128
)
# >>> your turn: write the decoder as an nn.Sequential — Conv 128 → up → Conv 64 → up → Conv 1 (3×3, padding=1, ReLU but not after the last)
decoder = nn.Sequential(
    nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),   # 7×7×128 → 14×14×128
    nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),    # 14×14×64 → 28×28×64
    nn.Conv2d(64, 1, 3, padding=1),                                              # 28×28×1 logits
)
# <<<
sequential = nn.Sequential(encoder, decoder)
check_encoder_decoder(sequential)
print(summary(sequential, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))"""),
    ("md", """## 2. The Functional way, with the concatenation skips

A skip connection makes a later layer read an *earlier* layer's output, so the network is no longer a chain:
its `forward` wires the graph by hand (what Keras' `Model(inputs, outputs)` works out from the tensors).
Name the encoder's maps as the lecture does: `conv_1` (28×28×64) and `conv_2` (14×14×128). In the decoder,
the 14×14 map coming up from 7×7 is **concatenated** with `conv_2` along the channels (`torch.cat(..., dim=1)`),
and the 28×28 map with `conv_1` — a U-Net (Ronneberger et al. 2015). Concatenating adds channels, so the
convolution that reads the joined map must be built for more input channels. That is the whole exercise:
match each encoding map to the decoding map of the same size, and count the channels."""),
    ("code", """class UNet(nn.Module):
    \"\"\"The lecture's encoder-decoder with concatenation skips: (B, 1, 28, 28) → logits (B, 1, 28, 28).\"\"\"

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv3 = nn.Conv2d(128, 128, 3, padding=1)
        # >>> your turn: build the decoder's second and last convolutions (Conv 64, Conv 1) for the channels they get after each concatenation
        self.conv4 = nn.Conv2d(128 + 128, 64, 3, padding=1)   # reads up(conv3) ⊕ conv_2: 14×14×(128 + 128)
        self.conv5 = nn.Conv2d(64 + 64, 1, 3, padding=1)      # reads up(conv4) ⊕ conv_1: 28×28×(64 + 64)
        # <<<
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        conv_1 = F.relu(self.conv1(x))                        # (B, 64, 28, 28)
        conv_2 = F.relu(self.conv2(self.pool(conv_1)))        # (B, 128, 14, 14)
        h = self.up(F.relu(self.conv3(self.pool(conv_2))))    # (B, 128, 14, 14)
        # >>> your turn: concatenate h with the 14×14 encoder map conv_2, apply conv4 and upsample, then concatenate with the 28×28 map conv_1
        h = torch.cat([h, conv_2], dim=1)                     # (B, 256, 14, 14)
        h = self.up(F.relu(self.conv4(h)))                    # (B, 64, 28, 28)
        h = torch.cat([h, conv_1], dim=1)                     # (B, 128, 28, 28)
        # <<<
        return self.conv5(h)                                  # logits (B, 1, 28, 28)


unet = UNet()
check_skip_autoencoder(unet)
print(summary(unet, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))"""),
    ("md", """## 3. Train both and compare

The lab's trainer does the rest: `fit(model, loss_fn, data, TrainConfig(...), folder)` shuffles, batches,
steps the optimiser, shows progress and writes checkpoints. Your part is the loss: noise a clean batch,
reconstruct it, compare with the clean digits. Both networks get the same budget."""),
    ("code", """def denoising_loss(model, batch, generator):
    (x,) = batch                                          # clean digits (B, 1, 28, 28)
    return F.binary_cross_entropy_with_logits(model(corrupt(x, NOISE, "norm", generator)), x)


config = TrainConfig(epochs=SIZES[SIZE]["epochs"], batch_size=32, lr=1e-3, compile="off", cuda_graph="off")
rows, scores = [("noisy", noisy[:10]), ("clean", clean[:10])], {"noisy input": image_metrics(noisy, clean)}
for name, model in (("Sequential, no skips", sequential), ("U-Net, concat skips", unet)):
    model.to(DEVICE)
    t0 = time.perf_counter()
    fit(model, denoising_loss, (train,), config, OUT / name.split(",")[0], label=name)
    with torch.no_grad():
        denoised = torch.sigmoid(model.eval()(noisy))
    scores[name] = image_metrics(denoised, clean)
    rows.append((name.split(",")[0], denoised[:10]))
    print(f"{name}: trained in {time.perf_counter() - t0:.0f} s")
for name, s in scores.items():
    print(f"{name:22s} PSNR {s['psnr']:5.2f} dB   SSIM {s['ssim']:.3f}   BCE {s['bce']:.4f}")
plots.image_rows(rows, OUT / "reconstructions.png", "denoising: without and with the concatenation skips")
show(OUT / "reconstructions.png")"""),
    ("md", """## Questions

1. Which network reconstructs better after the same budget, by how much (PSNR)? Train both once more with
   another `torch.manual_seed`: is the gap larger than the change between seeds? (`connlab autoencoder
   --skip all --seeds 3` does this over seeds, with a verdict.)
2. The skips hand the decoder the *noisy* input's features. What stops the U-Net from copying the noise?
3. Replace the concatenation with addition (`h = h + conv_2`): which convolutions change, and what happens
   to the parameter count?
4. Feed the denoised output back in a few times: does it keep improving, get worse, or settle?"""),
]

LADDER = [
    ("md", """# Exercise 2 — incremental denoising with T steps

> *Set up the diffusion / incremental noise here; try changing T (`steps2use`).*

Instead of one jump from a noisy digit to a clean one, build a **ladder**: x_0 is the clean digit and every
rung adds a little noise, x_t = clip(x_{t−1} + (mag2use / steps2use)·z_t), for t = 1 … T (`steps2use`),
z_t drawn from `dist2try` (`"norm"`: N(0, 1); `"uniform"`: U(−1, 1)). A network learns to step **down** one
rung, x_t → x_{t−1}; applied T times, it walks from the top rung back to a digit — and, the real question,
from pure noise to *what*? You set up the ladder and the training pairs; the lab supplies the U-Net of
Exercise 1, the trainer and the pictures."""),
    ("code", """import torch.nn.functional as F

from connlab import plots
from connlab.data import load_dataset, to_unit
from connlab.exercises import YourTurn, check_ladder_pairs, check_noise_rung
from connlab.metrics import psnr_per_image
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
from connlab.train import TrainConfig, fit

steps2use = 10     # T, the number of rungs — try changing T
dist2try = "norm"  # "norm" or "uniform"
mag2use = 1.0      # the rungs' noise scales add up to mag2use

SIZES = {"tiny": dict(limit=128, epochs=1), "small": dict(limit=2500, epochs=2), "full": dict(limit=None, epochs=10)}
data = load_dataset(DATASET, limit=SIZES[SIZE]["limit"])
train = to_unit(data.train_images).to(DEVICE)             # (N, 1, 28, 28) in [0, 1]
digits = to_unit(data.test_images[::100][:8]).to(DEVICE)  # 8 test digits to watch
print(f"{len(train)} training digits")"""),
    ("md", """## 1. One rung of the ladder

Draw z with the `generator` you are given (so a run can be repeated), of the distribution `dist2try` and the
shape of x, add it at scale `mag2use / steps2use`, and clip to [0, 1] as the lecture's notebook does with
`np.clip`. For U(−1, 1): `torch.rand(...)` is U(0, 1)."""),
    ("code", """def noise_rung(x, steps2use, mag2use, dist2try, generator):
    \"\"\"One rung up: x_{t−1} (B, 1, 28, 28) in [0, 1] → x_t, same shape, clipped to [0, 1].\"\"\"
    # >>> your turn: draw z (N(0, 1) for "norm", U(−1, 1) for "uniform") with generator=generator, add it at scale mag2use / steps2use, clip to [0, 1]
    if dist2try == "norm":
        z = torch.randn(x.shape, generator=generator, device=x.device)
    else:
        z = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1   # U(−1, 1)
    return (x + mag2use / steps2use * z).clamp(0, 1)
    # <<<


check_noise_rung(noise_rung)
g = torch.Generator(DEVICE).manual_seed(0)
rungs = [digits]
for t in range(1, steps2use + 1):
    rungs.append(noise_rung(rungs[-1], steps2use, mag2use, dist2try, g))
plots.image_rows([(f"x_{t}", rungs[t]) for t in range(0, steps2use + 1, max(1, steps2use // 5))],
                 OUT / "ladder.png", f"the ladder, x_0 (clean) to x_{steps2use}")
show(OUT / "ladder.png")"""),
    ("md", """## 2. Training pairs, made on the fly

The lecture's notebook stacks every rung of every digit into one big training set, N × (T+1) images (310 MB
for the 9,000 embedded digits at T = 10). Here each batch makes its pairs fresh instead: climb t rungs from
the clean batch and return the top two, **(x_t, x_{t−1})** — the network's input and its target. Watch the
off-by-one: at t = 1 the target x_0 is the clean digit itself."""),
    ("code", """def ladder_pair(x0, t, steps2use, mag2use, dist2try, generator):
    \"\"\"(x_t, x_{t−1}) for a batch x0 (B, 1, 28, 28) and one step t in 1 … steps2use.\"\"\"
    # >>> your turn: climb from x0 with noise_rung so that x_prev is rung t−1 and x_t the rung above it; return (x_t, x_prev)
    x_prev = x0
    for _ in range(t - 1):
        x_prev = noise_rung(x_prev, steps2use, mag2use, dist2try, generator)
    x_t = noise_rung(x_prev, steps2use, mag2use, dist2try, generator)
    return x_t, x_prev
    # <<<


check_ladder_pairs(ladder_pair)"""),
    ("md", """## 3. Train the one-step denoiser

The network is Exercise 1's U-Net (the lab's `DenoisingAutoencoder` with concatenation skips). Each batch draws
one t, makes its pairs and learns x_t → x_{t−1} with BCE; it is not told t, so it must read the noise level
from the image."""),
    ("code", """def train_ladder(steps2use):
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
print(f"trained in {time.perf_counter() - t0:.0f} s")"""),
    ("md", """## 4. Run the chain: from a noised digit, and from pure noise

Start at the top rung x_T of a test digit and apply the network T times; then start from uniform random pixels.
PSNR measures each step of the first chain against the clean digit."""),
    ("code", """@torch.no_grad()
def chain(model, x_top, steps2use):
    \"\"\"x̂_T = x_top, x̂_{t−1} = net(x̂_t): the T + 1 states, top first.\"\"\"
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


show_chains(model, steps2use)"""),
    ("md", """## 5. Try changing T

Set `steps2use` at the top to 3 or 20 and rerun the notebook, or train another ladder here:
`show_chains(train_ladder(3), 3)`. With more, smaller rungs each step is easier — does the chain get better?
What does the top rung look like (its noise std is mag2use/√T, not mag2use), and what does that mean for the
chain started from pure noise?

## Questions

1. Does PSNR rise at every step of the chain? Where does it stop rising?
2. Started from pure noise, what does the chain produce, and why not digits? (Compare the top rung with
   pure noise.)
3. What would change if the network were told t, or if the top rung were pure noise? (`connlab ladder
   --condition learned`, `--schedule vp`; Exercise 3 is where this leads.)"""),
]

DIFFUSION = [
    ("md", """# Exercise 3 — DDPM and DDIM: generating digits by repeated denoising

Ho et al. (2020) noise a digit in T small Gaussian steps until nothing is left, train a network to undo it,
and sample by running the reverse steps from pure noise. You write the two formulas this rests on:

- the **forward process** q(x_t | x_0), which jumps from x_0 to any step t in one go:
  x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε, with ε ~ N(0, I) and ᾱ_t = ∏_{s≤t} (1 − β_s);
- one **DDIM step** (Song et al. 2021, η = 0) from x_t to the previous step, given the network's noise
  estimate ε̂: first x̂_0 = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t, then x_{t−1} = √ᾱ_{t−1} · x̂_0 + √(1 − ᾱ_{t−1}) · ε̂.

The lab's U-Net, schedule, trainer and sampler do the rest. To fit a CPU, diffusion runs in the 4×7×7 latent
space of a small autoencoder (Rombach et al. 2022); your formulas do not care what x is."""),
    ("code", """import torch.nn.functional as F

from connlab import plots
from connlab.data import load_dataset, to_unit, unit_to_signed
from connlab.diffusion import EMA, NoiseSchedule, diffusion_loss, ddim_timesteps, sample_ddim
from connlab.exercises import YourTurn, check_ddim_step, check_q_sample
from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig
from connlab.models.latent_ae import LatentAutoencoder
from connlab.train import TrainConfig, fit

schedule = NoiseSchedule.cosine(1000).to(DEVICE)   # Nichol & Dhariwal's cosine ᾱ_t, T = 1000
alpha_bar = schedule.alpha_bar                     # (T,): ᾱ_t for t = 0 … T−1 (0-based, as in diffusers)
SIZES = {"tiny": dict(limit=256, ae_epochs=1, epochs=1, steps=5),
         "small": dict(limit=3000, ae_epochs=3, epochs=6, steps=50),
         "full": dict(limit=None, ae_epochs=16, epochs=40, steps=50)}
data = load_dataset(DATASET, limit=SIZES[SIZE]["limit"])
train = to_unit(data.train_images).to(DEVICE)            # (N, 1, 28, 28) in [0, 1]
print(f"{len(train)} training digits; ᾱ at t = 0, 250, 500, 750, 999:",
      ", ".join(f"{alpha_bar[t]:.3f}" for t in (0, 250, 500, 750, 999)))"""),
    ("md", """## 1. The forward process q(x_t | x_0)

`t` holds one step per image, so pick each image's ᾱ with `alpha_bar[t]` and shape it to (B, 1, 1, 1) to
broadcast over the image."""),
    ("code", """def q_sample(x0, t, eps, alpha_bar):
    \"\"\"x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.  x0, eps (B, C, H, W); t (B,) long; alpha_bar (T,).\"\"\"
    # >>> your turn: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε, with ᾱ_t = alpha_bar[t] reshaped to (B, 1, 1, 1)
    ab = alpha_bar[t].view(-1, 1, 1, 1)              # (B, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    # <<<


check_q_sample(q_sample)
x0 = unit_to_signed(to_unit(data.test_images[::125][:8])).to(DEVICE)   # (8, 1, 28, 28) in [−1, 1]
g = torch.Generator(DEVICE).manual_seed(0)
rows = []
for t in (0, 100, 250, 500, 750, 999):
    xt = q_sample(x0, torch.full((len(x0),), t, device=DEVICE), torch.randn(x0.shape, generator=g, device=DEVICE), alpha_bar)
    rows.append((f"t={t}, ᾱ={alpha_bar[t]:.3f}", ((xt + 1) / 2).clamp(0, 1)))
plots.image_rows(rows, OUT / "forward_process.png", "q(x_t | x_0), your forward process")
show(OUT / "forward_process.png")"""),
    ("md", """## 2. Train with your forward process

The lab trains the small autoencoder first and standardises its latents; then every batch draws a step t per
latent and a noise ε, noises the latents with **your** `q_sample`, and trains the lab's time-conditioned
U-Net (residual blocks, self-attention) to predict v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022: steadier
than predicting ε at the noisiest steps; the schedule converts it back to ε̂). EMA keeps an average of the
weights for sampling."""),
    ("code", """size = SIZES[SIZE]
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
print(f"autoencoder and U-Net trained in {time.perf_counter() - t0:.0f} s")"""),
    ("md", """## 3. One DDIM step

DDIM (η = 0) is deterministic: from x_t it estimates the clean x̂_0, then re-noises it to the level of the
previous step along the *same* predicted noise ε̂. Past the last step the previous ᾱ is 1 (the clean image)."""),
    ("code", """def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev):
    \"\"\"x_t (B, C, H, W), the network's ε̂ (same shape), ᾱ_t and ᾱ_{t−1} (floats) → x_{t−1}.\"\"\"
    # >>> your turn: x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t, then x_{t−1} = √ᾱ_{t−1}·x̂_0 + √(1 − ᾱ_{t−1})·ε̂
    x0_hat = (x_t - (1 - alpha_bar_t) ** 0.5 * eps_hat) / alpha_bar_t ** 0.5
    return alpha_bar_prev ** 0.5 * x0_hat + (1 - alpha_bar_prev) ** 0.5 * eps_hat
    # <<<


check_ddim_step(ddim_step)"""),
    ("md", """## 4. Sample with your step — and with the lab's sampler

Start from pure noise and take K DDIM steps (a sub-sequence of the T = 1000 steps). The same start through the
lab's `sample_ddim` should land on the same digits."""),
    ("code", """K, n = size["steps"], 10
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
show(OUT / "samples.png")"""),
    ("md", """## 5. The trajectory: structure first, detail later

Decode the states from x_T to x_0 at a few points along the way. The lecture: early steps give structure,
late steps detail."""),
    ("code", """picks = sorted({round(i * K / 6) for i in range(7)})
with torch.no_grad():
    frames = [ae.decode(states[p]) for p in picks]                  # each (n, 1, 28, 28)
rows = [(f"sample {k}", torch.stack([f[k] for f in frames])) for k in range(4)]
plots.image_rows(rows, OUT / "trajectory.png", "x_T → x_0; columns = steps taken: " + ", ".join(map(str, picks)))
show(OUT / "trajectory.png")"""),
    ("md", """## Questions

1. In the trajectory, at which step does each digit's identity appear, and when its detail?
2. Take K = 5, 20, 100 DDIM steps from the same x_T: what changes, and what does not?
3. Compare with the ladder of Exercise 2: which differences (the top rung is pure noise; the network is told t;
   it predicts the noise, not the image) let DDPM start from pure noise?
4. The full recipe — class-conditional guidance, more epochs, a quality score — is `connlab diffusion train`."""),
]

ATTENTION = [
    ("md", """# Exercise 4 — attention: a softmax gate over the values

Scaled dot-product attention (Vaswani et al. 2017): each query scores every key, a softmax turns the scores
into gate weights, and the output is the weighted sum of the values — the lecture's softmax gate, with Q, K
and V computed from the input:

attention(Q, K, V) = softmax(Q Kᵀ / √d) V

You write it; the check compares it with PyTorch's own `F.scaled_dot_product_attention`. Then it runs inside
the lab's transformer block (`connlab.nn.TransformerBlock`) on a task where attention is the whole point, and
you plot where each position looks."""),
    ("code", """import math

import matplotlib
import torch.nn.functional as F
from torch import nn

from connlab.exercises import YourTurn, check_attention
from connlab.nn import TransformerBlock
from connlab.train import TrainConfig, fit

SIZES = {"tiny": dict(train=256, epochs=1), "small": dict(train=6000, epochs=4), "full": dict(train=20000, epochs=30)}"""),
    ("md", """## 1. Scaled dot-product attention

q has shape (..., Lq, d), k (..., Lk, d), v (..., Lk, d_v); the leading dimensions are batch and heads. Return
the output (..., Lq, d_v) **and** the weights (..., Lq, Lk), one row per query, each row summing to 1. Why
√d: with unit-variance entries, q·k has variance d, and a softmax of large scores saturates."""),
    ("code", """def attention(q, k, v):
    \"\"\"softmax(q kᵀ / √d) v → (out (..., Lq, d_v), weights (..., Lq, Lk)).\"\"\"
    # >>> your turn: scores = q kᵀ / √d (k.transpose(-2, -1)), weights = softmax over the keys (dim=-1), out = weights @ v
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (..., Lq, Lk)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    # <<<


check_attention(attention)"""),
    ("md", """## 2. Inside a transformer block, on a sequence task

Reverse a sequence of 8 digits: output position i must *find* input position 7 − i. No fixed local rule can do
that; a query has to look it up. The model: a token embedding plus a learned position embedding, two of the
lab's pre-norm transformer blocks running **your** `attention`, and a linear read-out per position."""),
    ("code", """LENGTH, VOCAB = 8, 10


def reversal_task(n, seed):
    x = torch.randint(0, VOCAB, (n, LENGTH), generator=torch.Generator().manual_seed(seed))
    return x.to(DEVICE), x.flip(1).to(DEVICE)                     # (n, L) digits and their reversal


class SequenceModel(nn.Module):
    \"\"\"tokens (B, L) → logits (B, L, vocab).\"\"\"

    def __init__(self, dim=64, depth=2, heads=2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.randn(1, LENGTH, dim) * 0.02)   # where a digit sits: all that reversal needs
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio=2, attention=attention) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, VOCAB))

    def forward(self, tokens):
        h = self.embed(tokens) + self.pos                           # (B, L, dim)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def loss_fn(model, batch, generator):
    x, y = batch
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


train_x, train_y = reversal_task(SIZES[SIZE]["train"], seed=0)
test_x, test_y = reversal_task(1000, seed=999)
model = SequenceModel().to(DEVICE)
t0 = time.perf_counter()
fit(model, loss_fn, (train_x, train_y), TrainConfig(epochs=SIZES[SIZE]["epochs"], batch_size=64, lr=3e-3, compile="off", cuda_graph="off"),
    OUT / "reverse", label="reverse")
with torch.no_grad():
    pred = model.eval()(test_x).argmax(-1)
print(f"trained in {time.perf_counter() - t0:.0f} s; test accuracy per digit {(pred == test_y).float().mean():.3f}, "
      f"whole sequences {(pred == test_y).all(1).float().mean():.3f}")"""),
    ("md", """## 3. Where does each position look?

Every block keeps its last attention weights (`block.last_attention`, (B, heads, L, L)). Reversal should show
as an anti-diagonal: output position i attending to input position 7 − i — in some layer and head."""),
    ("code", """matplotlib.use("Agg")   # draw to a file, shown below (the same in Jupyter and in the tests)
import matplotlib.pyplot as plt

with torch.no_grad():
    model(test_x[:1])
maps = [block.last_attention[0].cpu() for block in model.blocks]   # each (heads, L, L)
fig, axes = plt.subplots(len(maps), maps[0].shape[0], figsize=(3 * maps[0].shape[0], 3 * len(maps)), squeeze=False)
digits = test_x[0].tolist()
for layer, weights in enumerate(maps):
    for head, w in enumerate(weights):
        ax = axes[layer][head]
        ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
        ax.set_xticks(range(LENGTH), digits, fontsize=7)
        ax.set_yticks(range(LENGTH), range(LENGTH), fontsize=7)
        ax.set_xlabel("key: input digit", fontsize=8)
        ax.set_ylabel("query: output position", fontsize=8)
fig.suptitle(f"attention weights for the input {digits}", fontsize=10)
fig.tight_layout()
fig.savefig(OUT / "attention_pattern.png", dpi=80)
plt.close(fig)
show(OUT / "attention_pattern.png")"""),
    ("md", """## Questions

1. Which layer and head carry out the reversal? What do the others do?
2. Drop the position embedding (`self.pos`): what happens to the accuracy, and why?
3. Remove the 1/√d from your `attention` and retrain with `dim=256`: what happens to the weights early in
   training?
4. Sorting instead of reversing (`x.sort(dim=1).values` as the target): what pattern should appear? (`connlab
   attention --task sort` runs it, and `connlab vit` attends over the patches of a digit.)"""),
]

NOTEBOOKS = {"01_autoencoder": AUTOENCODER, "02_incremental_denoising": LADDER, "03_diffusion": DIFFUSION,
             "04_attention": ATTENTION}


def render(code: str, solution: bool) -> str:
    """The code of one cell with its marked places filled in (``solution``) or left to the student."""
    lines, out, inside = code.split("\n"), [], False
    for line in lines:
        begin = BEGIN.match(line)
        if begin:
            assert not inside, f"nested marked place: {line}"
            inside = True
            indent, message = begin["indent"], begin["message"]
            if solution:
                out.append(f"{indent}# ✎ Your turn: {message}")
            else:
                out.append(f"{indent}# ✎ Your turn: replace the next line with your code")
                out.append(f"{indent}raise YourTurn({message!r})")
            continue
        if END.match(line):
            assert inside, f"an end marker without a start: {line}"
            inside = False
            continue
        if not inside or solution:
            out.append(line)
    assert not inside, "a marked place is not closed"
    return "\n".join(out)


def marked_places(name: str) -> list[str]:
    """The messages of a notebook's marked places, in order (the tests expect the first)."""
    return [m["message"] for kind, text in NOTEBOOKS[name] if kind == "code"
            for m in map(BEGIN.match, text.split("\n")) if m]


def notebook(name: str, cells: list[tuple[str, str]], solution: bool) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    body = [new_markdown_cell(text) if kind == "md" else new_code_cell(render(text, solution)) for kind, text in cells]
    if solution:
        body[0]["source"] = body[0]["source"].replace("\n", " — solution\n", 1)
    body[1:1] = [new_code_cell(INSTALL), new_code_cell(f'NAME = "{name}"\n' + SETUP)]
    for i, cell in enumerate(body):  # stable ids, so regenerating gives the same file
        cell["id"] = f"{name}-{'s' if solution else 'e'}{i:02d}"
    nb.cells = body
    return nb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "notebooks")
    args = parser.parse_args()
    for folder, solution in ((args.out, False), (args.out / "solutions", True)):
        folder.mkdir(parents=True, exist_ok=True)
        for name, cells in NOTEBOOKS.items():
            nb = notebook(name, cells, solution)
            nbformat.validate(nb)
            path = folder / f"{name}.ipynb"
            path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
            print(path)


if __name__ == "__main__":
    main()
