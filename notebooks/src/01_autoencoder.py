# %% [markdown]
# # Exercise 1 — a denoising autoencoder, then skip connections with concatenation
#
# > *MNIST autoencoder, reconstruct digits from noisy inputs — add skip connections with concatenation;
# > make sure you see how the outputs from encoding layers are matched up to inputs for decoding layers
# > (14×14 encoding maps concatenated with 14×14 decoding maps).*
#
# You write the network twice: first the **Sequential** way (a straight chain of layers), then the
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
from connlab.data import corrupt, load_dataset, to_unit
from connlab.exercises import YourTurn, check_encoder_decoder, check_skip_autoencoder, show, start
from connlab.metrics import image_metrics
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("01_autoencoder")

SIZES = {"tiny": dict(limit=128, epochs=1), "small": dict(limit=2500, epochs=1), "full": dict(limit=None, epochs=10)}
NOISE = 0.5   # x + 0.5·N(0, 1), clipped to [0, 1]: the noisy digits to clean up
data = load_dataset(DATASET, limit=SIZES[SIZE]["limit"])
train = to_unit(data.train_images).to(DEVICE)                           # (N, 1, 28, 28) in [0, 1]
clean = to_unit(data.test_images[:500]).to(DEVICE)                      # a fixed test set ...
noisy = corrupt(clean, NOISE, "norm", torch.Generator(DEVICE).manual_seed(1234))   # ... and its noisy copy
print(f"{len(train)} training digits; test: {len(clean)} noisy/clean pairs")
plots.image_rows([("clean", clean[:10]), ("noisy", noisy[:10])], OUT / "data.png", "what the network gets and what it should give")
show(OUT / "data.png")

# %% [markdown]
# ## 1. The Sequential way
#
# The lecture's encoder: **Conv 64 → pool → Conv 128 → pool** (28×28 → 14×14 → 7×7); its decoder mirrors it:
# **Conv 128 → up → Conv 64 → up → Conv 1** (7×7 → 14×14 → 28×28). Every convolution is 3×3 with
# `padding=1` (Keras' `padding="same"`) and a ReLU, except the last, which gives one channel of *logits*
# (the loss is BCE with logits; a sigmoid turns them into pixels only for pictures). Pooling is
# `nn.MaxPool2d(2)`, upsampling `nn.Upsample(scale_factor=2)`. A straight chain like this is one
# `nn.Sequential` — Keras' Sequential API.

# %%
encoder = nn.Sequential(
    nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 28×28×64 → 14×14×64
    nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 14×14×128 → 7×7×128
)
# ✎ Your turn: write the decoder as an nn.Sequential — Conv 128 → up → Conv 64 → up → Conv 1 (3×3, padding=1, ReLU but not after the last)
### BEGIN SOLUTION
decoder = nn.Sequential(
    nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),   # 7×7×128 → 14×14×128
    nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),    # 14×14×64 → 28×28×64
    nn.Conv2d(64, 1, 3, padding=1),                                              # 28×28×1 logits
)
### END SOLUTION
sequential = nn.Sequential(encoder, decoder)


# %%
check_encoder_decoder(sequential)


# %%
print(summary(sequential, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))

# %% [markdown]
# ## 2. The Functional way, with the concatenation skips
#
# A skip connection makes a later layer read an *earlier* layer's output, so the network is no longer a chain:
# its `forward` wires the graph by hand (what Keras' `Model(inputs, outputs)` works out from the tensors).
# Name the encoder's maps as the lecture does: `conv_1` (28×28×64) and `conv_2` (14×14×128). In the decoder,
# the 14×14 map coming up from 7×7 is **concatenated** with `conv_2` along the channels (`torch.cat(..., dim=1)`),
# and the 28×28 map with `conv_1` — a U-Net (Ronneberger et al. 2015). Concatenating adds channels, so the
# convolution that reads the joined map must be built for more input channels. That is the whole exercise:
# match each encoding map to the decoding map of the same size, and count the channels.

# %%
class UNet(nn.Module):
    """The lecture's encoder-decoder with concatenation skips: (B, 1, 28, 28) → logits (B, 1, 28, 28)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv3 = nn.Conv2d(128, 128, 3, padding=1)
        # ✎ Your turn: build the decoder's second and last convolutions (Conv 64, Conv 1) for the channels they get after each concatenation
        ### BEGIN SOLUTION
        self.conv4 = nn.Conv2d(128 + 128, 64, 3, padding=1)   # reads up(conv3) ⊕ conv_2: 14×14×(128 + 128)
        self.conv5 = nn.Conv2d(64 + 64, 1, 3, padding=1)      # reads up(conv4) ⊕ conv_1: 28×28×(64 + 64)
        ### END SOLUTION
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        conv_1 = F.relu(self.conv1(x))                        # (B, 64, 28, 28)
        conv_2 = F.relu(self.conv2(self.pool(conv_1)))        # (B, 128, 14, 14)
        h = self.up(F.relu(self.conv3(self.pool(conv_2))))    # (B, 128, 14, 14)
        # ✎ Your turn: concatenate h with the 14×14 encoder map conv_2, apply conv4 and upsample, then concatenate with the 28×28 map conv_1
        ### BEGIN SOLUTION
        h = torch.cat([h, conv_2], dim=1)                     # (B, 256, 14, 14)
        h = self.up(F.relu(self.conv4(h)))                    # (B, 64, 28, 28)
        h = torch.cat([h, conv_1], dim=1)                     # (B, 128, 28, 28)
        ### END SOLUTION
        return self.conv5(h)                                  # logits (B, 1, 28, 28)


unet = UNet()


# %%
check_skip_autoencoder(unet)


# %%
print(summary(unet, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))

# %% [markdown]
# ## 3. Train both and compare
#
# The lab's trainer does the rest: `fit(model, loss_fn, data, TrainConfig(...), folder)` shuffles, batches,
# steps the optimiser, shows progress and writes checkpoints. Your part is the loss: noise a clean batch,
# reconstruct it, compare with the clean digits. Both networks get the same budget.

# %%
def denoising_loss(model, batch, generator):
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
show(OUT / "reconstructions.png")

# %% [markdown]
# ## Questions
#
# 1. Which network reconstructs better after the same budget, by how much (PSNR)? Train both once more with
#    another `torch.manual_seed`: is the gap larger than the change between seeds? (`connlab autoencoder
#    --skip all --seeds 3` does this over seeds, with a verdict.)
# 2. The skips hand the decoder the *noisy* input's features. What stops the U-Net from copying the noise?
# 3. Replace the concatenation with addition (`h = h + conv_2`): which convolutions change, and what happens
#    to the parameter count?
# 4. Feed the denoised output back in a few times: does it keep improving, get worse, or settle?
