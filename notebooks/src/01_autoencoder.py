# %% [markdown]
# # Exercise 1 — a denoising autoencoder, then skip connections with concatenation
#
# > *MNIST autoencoder, reconstruct digits from noisy inputs — add skip connections with concatenation;
# > make sure you see how the outputs from encoding layers are matched up to inputs for decoding layers
# > (14×14 encoding maps concatenated with 14×14 decoding maps).*
#
# This is the course's Exercise 1 (the CIML summer institute's `C24_MNIST_Autoencoder_v3` notebook), in
# PyTorch: its data (MNIST's first 1,000 training digits), its noise (salt and pepper, drawn once), its
# network (with the 16-filter bottleneck) and its training (Adam, binary cross-entropy, batch 128, 20
# epochs). You write the network twice: first the **Sequential** way (a straight chain of layers), then the
# **Functional** way — a module whose `forward` wires a graph, which is what a skip connection needs. The lab
# supplies the data, the trainer (`connlab.train.fit`), the metrics and the pictures; `connlab.exercises`
# checks your pieces and says in one sentence what is wrong. Where a cell says **Your turn**, replace the
# `raise YourTurn(...)` line with your code.

# %%
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchinfo import summary

from connlab import plots
from connlab.data import to_unit
from connlab.data.noise import salt_and_pepper
from connlab.data.course import load_course_data
from connlab.exercises import YourTurn, check_encoder_decoder, check_skip_autoencoder, show, start
from connlab.metrics import image_metrics
from connlab.nn.init import keras_init_
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("01_autoencoder")
# small is the course's protocol (1,000 digits, 20 epochs), validated on 1,000 held-out digits; full on 10,000
SIZES = {"tiny": dict(n_train=128, n_val=128, epochs=1), "small": dict(n_train=1000, n_val=1000, epochs=20),
         "full": dict(n_train=1000, n_val=None, epochs=20)}
course = load_course_data(n_train=SIZES[SIZE]["n_train"], n_validation=SIZES[SIZE]["n_val"])
train = to_unit(course.data.train_images).to(DEVICE)   # (N, 1, 28, 28) in [0, 1]
clean = to_unit(course.data.test_images).to(DEVICE)    # the validation digits
g = torch.Generator(DEVICE).manual_seed(1234)
noisy_train, noisy = salt_and_pepper(train, g), salt_and_pepper(clean, g)   # drawn once, as the course does
print(f"{len(train)} training digits, {len(clean)} validation digits ({course.validation})")
plots.image_rows([("clean", clean[:10]), ("noisy", noisy[:10])], OUT / "data.png",
                 "salt and pepper: x + round(U(−1, 1)), clipped to [0, 1]")
show(OUT / "data.png")

# %% [markdown]
# ## 1. The Sequential way
#
# The course's encoder: **Conv 64 → pool → Conv 128 → pool** (28×28 → 14×14 → 7×7), then a **bottleneck**:
# a 16-filter 3×3 convolution at 7×7 that squeezes 128 channels into 16. Its decoder mirrors the encoder:
# **Conv 128 → up → Conv 64 → up → Conv 1** (7×7 → 14×14 → 28×28). Every convolution is 3×3 with
# `padding=1` (Keras' `padding="same"`) and a ReLU, except the last, which gives one channel of *logits*:
# the course's `Conv2D(1, activation="sigmoid")` with `binary_crossentropy` is, in PyTorch, a plain
# `Conv2d(…, 1, …)` with `F.binary_cross_entropy_with_logits` (the same loss, computed stably); a sigmoid
# turns logits into pixels for the pictures. Pooling is `nn.MaxPool2d(2)`, up-sampling
# `nn.Upsample(scale_factor=2)` (Keras' `UpSampling2D`; `nn.ConvTranspose2d(c, c, 2, stride=2)` is the
# course's "another option"). A straight chain like this is one `nn.Sequential` — Keras' Sequential API.

# %%
encoder = nn.Sequential(
    nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 28×28×64 → 14×14×64
    nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 14×14×128 → 7×7×128
)
bottleneck = nn.Sequential(nn.Conv2d(128, 16, 3, padding=1), nn.ReLU())   # 7×7×16
# ✎ Your turn: write the decoder as an nn.Sequential — Conv 128 → up → Conv 64 → up → Conv 1 (3×3, padding=1, ReLU but not after the last)
### BEGIN SOLUTION
decoder = nn.Sequential(
    nn.Conv2d(16, 128, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),    # 7×7×128 → 14×14×128
    nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),    # 14×14×64 → 28×28×64
    nn.Conv2d(64, 1, 3, padding=1),                                              # 28×28×1 logits
)
### END SOLUTION
sequential = nn.Sequential(encoder, bottleneck, decoder)

# %%
check_encoder_decoder(sequential)

# %%
print(summary(sequential, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))

# %% [markdown]
# ## 2. The Functional way, with the concatenation skips
#
# A skip connection makes a later layer read an *earlier* layer's output, so the network is no longer a chain:
# its `forward` wires the graph by hand (what Keras' `Model(inputs, outputs)` works out from the tensors).
# Name the encoder's maps as the course does: `conv_1` (28×28×64) and `conv_2` (14×14×128). In the decoder,
# the 14×14 map coming up from 7×7 is **concatenated** with `conv_2` along the channels (`torch.cat(..., dim=1)`,
# Keras' `Concatenate(axis=-1)`), and the 28×28 map with `conv_1` — a U-Net (Ronneberger et al. 2015).
# Concatenating adds channels, so the convolution that reads the joined map must be built for more input
# channels. That is the whole exercise: match each encoding map to the decoding map of the same size, and
# count the channels.

# %%
class UNet(nn.Module):
    """The course's encoder-decoder with concatenation skips: (B, 1, 28, 28) → logits (B, 1, 28, 28)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, padding=1)
        self.bottleneck = nn.Conv2d(128, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 128, 3, padding=1)
        # ✎ Your turn: build the decoder's second and last convolutions (Conv 64, Conv 1) for the channels they get after each concatenation
        ### BEGIN SOLUTION
        self.conv4 = nn.Conv2d(128 + 128, 64, 3, padding=1)   # reads up(conv3) ⊕ conv_2: 14×14×(128 + 128)
        self.conv5 = nn.Conv2d(64 + 64, 1, 3, padding=1)      # reads up(conv4) ⊕ conv_1: 28×28×(64 + 64)
        ### END SOLUTION
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        conv_1 = F.relu(self.conv1(x))                                 # (B, 64, 28, 28)
        conv_2 = F.relu(self.conv2(self.pool(conv_1)))                 # (B, 128, 14, 14)
        h = F.relu(self.bottleneck(self.pool(conv_2)))                 # (B, 16, 7, 7)
        h = self.up(F.relu(self.conv3(h)))                             # (B, 128, 14, 14)
        # ✎ Your turn: concatenate h with the 14×14 encoder map conv_2, apply conv4 and upsample, then concatenate with the 28×28 map conv_1
        ### BEGIN SOLUTION
        h = torch.cat([h, conv_2], dim=1)                              # (B, 256, 14, 14)
        h = self.up(F.relu(self.conv4(h)))                             # (B, 64, 28, 28)
        h = torch.cat([h, conv_1], dim=1)                              # (B, 128, 28, 28)
        ### END SOLUTION
        return self.conv5(h)                                           # logits (B, 1, 28, 28)


unet = UNet()

# %%
check_skip_autoencoder(unet)

# %%
print(summary(unet, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))

# %% [markdown]
# ## 3. Train both and compare
#
# The lab's trainer does the rest: `fit(model, loss_fn, data, TrainConfig(...), folder)` shuffles, batches,
# steps the optimiser (Adam, lr 1e-3), shows progress and writes checkpoints. Both networks start from Keras'
# default initialisation (Glorot-uniform kernels, zero biases), as in the course, and get the same budget.
# The course also stops early when the validation loss has not improved for 5 epochs; at 20 epochs it rarely
# does (`connlab autoencoder --preset course` runs the course's protocol exactly, over seeds).

# %%
def denoising_loss(model, batch, generator):
    x_noisy, x = batch                                    # the noisy digits and their clean originals
    return F.binary_cross_entropy_with_logits(model(x_noisy), x)


config = TrainConfig(epochs=SIZES[SIZE]["epochs"], batch_size=128, lr=1e-3, compile="off", cuda_graph="off")
rows, scores = [("noisy", noisy[:10]), ("clean", clean[:10])], {"noisy input": image_metrics(noisy, clean)}
for name, model in (("Sequential, no skips", sequential), ("U-Net, concat skips", unet)):
    keras_init_(model, torch.Generator().manual_seed(0)).to(DEVICE)
    t0 = time.perf_counter()
    fit(model, denoising_loss, (noisy_train, train), config, OUT / name.split(",")[0], label=name)
    with torch.no_grad():
        denoised = torch.cat([torch.sigmoid(model.eval()(x)) for x in noisy.split(500)])
    scores[name] = image_metrics(denoised, clean)
    rows.append((name.split(",")[0], denoised[:10]))
    print(f"{name}: trained in {time.perf_counter() - t0:.0f} s")
for name, s in scores.items():
    print(f"{name:22s} validation BCE {s['bce']:.4f}   PSNR {s['psnr']:5.2f} dB   SSIM {s['ssim']:.3f}")
print("the course's runs (20 epochs, MNIST's test set): BCE 0.1652 without skips, 0.1447 with them")
plots.image_rows(rows, OUT / "reconstructions.png", "denoising: without and with the concatenation skips")
show(OUT / "reconstructions.png")

# %% [markdown]
# ## 4. Feed the output back
#
# The course's feedback notebook feeds the prediction back in as the input, 5 more times. Before running
# the cell: does the digit get cleaner, worse, or settle (the lecture's A/B/C question)?

# %%
with torch.no_grad():
    passes = [noisy[:10]]
    for _ in range(6):                                    # the first pass, then 5 fed back
        passes.append(torch.sigmoid(unet(passes[-1])))
plots.image_rows([("noisy", passes[0])] + [(f"pass {k}", p) for k, p in enumerate(passes[1:], 1)],
                 OUT / "feedback.png", "the U-Net's output fed back as its input")
show(OUT / "feedback.png")

# %% [markdown]
# ## Questions
#
# 1. Which network reconstructs better after the same budget, by how much (validation BCE, PSNR)? Train both
#    once more with another seed: is the gap larger than the change between seeds? (`connlab autoencoder
#    --preset course --skip all --seeds 5` does this over seeds, with the course's numbers beside them.)
# 2. The skips hand the decoder the *noisy* input's features. What stops the U-Net from copying the noise?
# 3. Replace the concatenation with addition (`h = h + conv_2`): which convolutions change, and what happens
#    to the parameter count (260,177 with both concatenations, 185,873 without)?
# 4. Drop the bottleneck (the lab's own network): does the 16-filter squeeze help or hurt the denoising?
