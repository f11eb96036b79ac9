# %% [markdown]
# # Exercise 5 — residual connections: can we keep adding layers?
#
# > *"Can we keep adding layers?" — a deeper plain network can train worse than a shallow one; a residual
# > connection adds a block's input to its output, so each block only has to learn a change.*
#
# This is the course's residual notebook (`CIML23_MNIST_wResidConnections_v0`), in PyTorch: classify noisy
# digits (MNIST's first 1,000 training digits, Exercise 1's salt-and-pepper noise, drawn once) with a conv stem,
# a stack of **identity blocks** and a small dense head — once plain, once with the residual additions. You
# write the identity block; the lab supplies the data, the trainer and the check.

# %%
import time

import torch
import torch.nn.functional as F
from torch import nn

from connlab.data import to_unit
from connlab.data.course import load_course_data
from connlab.data.noise import salt_and_pepper
from connlab.exercises import YourTurn, check_identity_block, show, start
from connlab.nn.init import keras_init_
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("05_residual")

numlayers = 3      # identity blocks (the course's numlayers)
SIZES = {"tiny": dict(n_train=128, n_val=128, epochs=1), "small": dict(n_train=1000, n_val=1000, epochs=10),
         "full": dict(n_train=1000, n_val=1000, epochs=20)}
course = load_course_data(n_train=SIZES[SIZE]["n_train"], n_validation=SIZES[SIZE]["n_val"])
g = torch.Generator(DEVICE).manual_seed(1234)
x_train = salt_and_pepper(to_unit(course.data.train_images).to(DEVICE), g)   # noised once, as the course does
x_val = salt_and_pepper(to_unit(course.data.test_images).to(DEVICE), g)
y_train, y_val = course.data.train_labels.to(DEVICE), course.data.test_labels.to(DEVICE)
print(f"{len(x_train)} training digits, {len(x_val)} validation digits ({course.validation})")

# %% [markdown]
# ## 1. The identity block
#
# Three layers, each with a ReLU: **Conv 16 1×1 → Conv 16 3×3 → Conv 64 1×1** (the 3×3 with `padding=1`,
# Keras' `padding="same"`), mapping a 14×14×64 map to one of the same shape — the bottleneck block of He et
# al. (2015). With `residual=True` the block's input is **added** to its output at the marked place, after
# the last ReLU, where the course adds it (`Add()([x, h])`; He et al. add just before that ReLU).

# %%
class IdentityBlock(nn.Module):
    """(B, 64, 14, 14) → (B, 64, 14, 14); with ``residual``, the input is added after the last ReLU."""

    def __init__(self, residual):
        super().__init__()
        self.residual = residual
        # ✎ Your turn: build the three convolutions: 64 → 16 (1×1), 16 → 16 (3×3, padding=1), 16 → 64 (1×1)
        ### BEGIN SOLUTION
        self.reduce = nn.Conv2d(64, 16, 1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.expand = nn.Conv2d(16, 64, 1)
        ### END SOLUTION

    def forward(self, x):
        # ✎ Your turn: apply the three convolutions, each followed by F.relu, into h; then, if self.residual, add the block input: h = h + x
        ### BEGIN SOLUTION
        h = F.relu(self.reduce(x))                   # (B, 16, 14, 14)
        h = F.relu(self.conv(h))                     # (B, 16, 14, 14)
        h = F.relu(self.expand(h))                   # (B, 64, 14, 14)
        if self.residual:
            h = h + x                                # the residual connection
        ### END SOLUTION
        return h


# %%
check_identity_block(IdentityBlock)

# %% [markdown]
# ## 2. The network, plain and residual
#
# The course's stem (Conv 64 3×3 + ReLU, pool 2: 14×14×64), `numlayers` identity blocks, then Flatten → Dense 32
# (ReLU) → Dense 10. Both networks have the same layers and parameters; only the additions differ.

# %%
def network(residual):
    """(B, 1, 28, 28) → logits (B, 10)."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # (B, 64, 14, 14)
        *(IdentityBlock(residual) for _ in range(numlayers)),
        nn.Flatten(), nn.Linear(64 * 14 * 14, 32), nn.ReLU(), nn.Linear(32, 10),
    )


# %% [markdown]
# ## 3. Train both
#
# The course trains with **binary** cross-entropy on the one-hot labels (Keras' `binary_crossentropy` on a
# softmax output) — a quirk we keep, as its numbers come from it; categorical cross-entropy is the usual
# choice (`connlab depth --preset course` shows both). Adam (lr 1e-3), batch 128, Keras' initialisation.

# %%
def course_loss(model, batch, generator):
    x, y = batch
    p = torch.softmax(model(x), dim=1).clamp(1e-7, 1 - 1e-7)            # Keras clips its probabilities
    return F.binary_cross_entropy(p, F.one_hot(y, 10).float())


config = TrainConfig(epochs=SIZES[SIZE]["epochs"], batch_size=128, lr=1e-3, compile="off", cuda_graph="off")
accuracy = {}
for residual in (False, True):
    name = "residual" if residual else "plain"
    model = keras_init_(network(residual), torch.Generator().manual_seed(0)).to(DEVICE)
    t0 = time.perf_counter()
    fit(model, course_loss, (x_train, y_train), config, OUT / name, label=f"{name}, {numlayers} blocks")
    with torch.no_grad():
        pred = torch.cat([model.eval()(x).argmax(1) for x in x_val.split(500)])
    accuracy[name] = (pred == y_val).float().mean().item()
    print(f"{name}: validation accuracy {accuracy[name]:.3f}, {len(set(pred.tolist()))} classes predicted, "
          f"trained in {time.perf_counter() - t0:.0f} s")
print("the course's run (3 blocks, 20 epochs): plain 0.100 (one class for every digit), residual 0.634")

# %% [markdown]
# ## Questions
#
# 1. Does the plain network learn at all? How many classes does it predict — and what does that say about the
#    gradient reaching its first layers?
# 2. Set `numlayers = 1` and rerun: does the plain network learn now? Where does the gap come from?
# 3. Move the addition before the last ReLU (He et al.'s place): does it change the result?
# 4. Replace the course's binary cross-entropy with `F.cross_entropy(model(x), y)`: what changes, and why might
#    the course's quirk matter for the plain network?
