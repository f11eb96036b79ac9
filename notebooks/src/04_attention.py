# %% [markdown]
# # Exercise 4 — attention: a softmax gate over the values
#
# Scaled dot-product attention (Vaswani et al. 2017): each query scores every key, a softmax turns the scores
# into gate weights, and the output is the weighted sum of the values — the lecture's softmax gate, with Q, K
# and V computed from the input:
#
# attention(Q, K, V) = softmax(Q Kᵀ / √d) V
#
# You write it; the check compares it with PyTorch's own `F.scaled_dot_product_attention`. Then it runs inside
# the lab's transformer block (`connlab.nn.TransformerBlock`) on a task where attention is the whole point, and
# you plot where each position looks.

# %%
import math
import time

import matplotlib
import torch
import torch.nn.functional as F
from torch import nn

from connlab.exercises import YourTurn, check_attention, show, start
from connlab.nn import TransformerBlock
from connlab.train import TrainConfig, fit

SIZE, DEVICE, OUT, DATASET = start("04_attention")

SIZES = {"tiny": dict(train=256, epochs=1), "small": dict(train=6000, epochs=4), "full": dict(train=20000, epochs=30)}

# %% [markdown]
# ## 1. Scaled dot-product attention
#
# q has shape (..., Lq, d), k (..., Lk, d), v (..., Lk, d_v); the leading dimensions are batch and heads. Return
# the output (..., Lq, d_v) **and** the weights (..., Lq, Lk), one row per query, each row summing to 1. Why
# √d: with unit-variance entries, q·k has variance d, and a softmax of large scores saturates.

# %%
def attention(q, k, v):
    """softmax(q kᵀ / √d) v → (out (..., Lq, d_v), weights (..., Lq, Lk))."""
    # ✎ Your turn: scores = q kᵀ / √d (k.transpose(-2, -1)), weights = softmax over the keys (dim=-1), out = weights @ v
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (..., Lq, Lk)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    ### END SOLUTION


# %%
check_attention(attention)

# %% [markdown]
# ## 2. Inside a transformer block, on a sequence task
#
# Reverse a sequence of 8 digits: output position i must *find* input position 7 − i. No fixed local rule can do
# that; a query has to look it up. The model: a token embedding plus a learned position embedding, two of the
# lab's pre-norm transformer blocks running **your** `attention`, and a linear read-out per position.

# %%
LENGTH, VOCAB = 8, 10


def reversal_task(n, seed):
    x = torch.randint(0, VOCAB, (n, LENGTH), generator=torch.Generator().manual_seed(seed))
    return x.to(DEVICE), x.flip(1).to(DEVICE)                     # (n, L) digits and their reversal


class SequenceModel(nn.Module):
    """tokens (B, L) → logits (B, L, vocab)."""

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
      f"whole sequences {(pred == test_y).all(1).float().mean():.3f}")

# %% [markdown]
# ## 3. Where does each position look?
#
# Every block keeps its last attention weights (`block.last_attention`, (B, heads, L, L)). Reversal should show
# as an anti-diagonal: output position i attending to input position 7 − i — in some layer and head.

# %%
matplotlib.use("Agg")   # draw to a file, shown below (the same in Jupyter and in the tests)
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
show(OUT / "attention_pattern.png")

# %% [markdown]
# ## Questions
#
# 1. Which layer and head carry out the reversal? What do the others do?
# 2. Drop the position embedding (`self.pos`): what happens to the accuracy, and why?
# 3. Remove the 1/√d from your `attention` and retrain with `dim=256`: what happens to the weights early in
#    training?
# 4. Sorting instead of reversing (`x.sort(dim=1).values` as the target): what pattern should appear? (`connlab
#    attention --task sort` runs it, and `connlab vit` attends over the patches of a digit.)
