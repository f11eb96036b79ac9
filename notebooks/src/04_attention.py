# %% [markdown]
# # Exercise 4 — the toy attention head: who ordered?
#
# The course's toy task (C24_toytask_attentionhead): seven tokens and two sentences,
#
#     <Start> man ordered the chicken        <Start> woman ordered the beef
#
# and one attention head trained to predict the next token (after the last token: `<Start>` again). After `the`
# the object depends on who ordered, three tokens back: the prediction there has to *look back*, which is what
# attention does. The network (413 parameters at H = 20): a token embedding and a learned position embedding
# (7 numbers each), added: x; Q = x W_q and K = x W_k (to H numbers), V = x W_v (7 numbers), no biases;
# weights = softmax(Q Kᵀ / √H) with a causal mask; out = weights · V; the embedded input added to it (the
# course's "skip-add"); a sigmoid. You write the head's masked, scaled attention; then you train it as the course
# does (SGD, lr 0.01, the whole corpus as one batch, 10 + 5,000 + 10 epochs with reduce-on-plateau) and look at
# what it learned.

# %%
import math
import time

import matplotlib
import torch
import torch.nn.functional as F

from connlab.exercises import YourTurn, check_causal_attention, check_toy_head, show, start
from connlab.models.toy_attention import (SENTENCES, THE, TOKENS, ToyAttentionModel, ToyHeadConfig, ToyTransformer,
                                          corpus, generate, keras_sparse_ce, loss_floor, p_object_at_the, prefix_probs)

SIZE, DEVICE, OUT, DATASET = start("04_attention")
torch.set_num_threads(1)   # tensors of a few hundred numbers: a second thread only adds synchronisation

H = 20                     # the course: "try 10, 20, 40"
SEED = 1                   # the course: "20 works well I think, but not always" — try other seeds too
EPOCHS = {"tiny": 5000, "small": 5000, "full": 5000}[SIZE]   # one epoch = one step: the corpus is one batch
x, y = corpus()
print("inputs", x.tolist(), "targets", y.tolist(), f"floor ln 2 / 5 = {loss_floor():.4f}")

# %% [markdown]
# ## 1. The causal mask
#
# A language model that predicts token t + 1 must not read it: query t may see keys j ≤ t only. Build that as a
# T × T boolean matrix, True where query t (row) may look at key j (column).

# %%
T = x.shape[1]
# ✎ Your turn: keep[t, j] = True for j ≤ t, False above the diagonal (a lower triangle: torch.tril)
### BEGIN SOLUTION
keep = torch.ones(T, T, dtype=torch.bool).tril()
### END SOLUTION
print(keep.int())

# %% [markdown]
# ## 2. The masked, scaled head
#
# q and k have shape (B, T, H), v (B, T, E). Score every query t against every key j, scale by 1/√H (so the
# scores keep a variance of about 1 however large H is), and hide the future with your mask (for any length n:
# build it for n inside the function): the hidden scores become −inf, so the softmax gives them weight 0. Then
# a softmax over the keys (each row sums to 1) and the weighted sum of the values. Return `(out, weights)`.

# %%
def causal_attention(q, k, v):
    """(B, T, H), (B, T, H), (B, T, E) → out (B, T, E), weights (B, T, T) with weights[:, t, j] = 0 for j > t."""
    n, h = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1)                               # (B, T, T): query t · key j
    # ✎ Your turn: scale the scores by 1/√H, then give every key j > t the score −inf (torch.tril keeps j ≤ t)
    ### BEGIN SOLUTION
    scores = scores / math.sqrt(h)
    future = ~torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(future, float("-inf"))
    ### END SOLUTION
    weights = torch.softmax(scores, dim=-1)                        # over the keys: each row sums to 1
    return weights @ v, weights


# %%
check_causal_attention(causal_attention)

# %% [markdown]
# ## 3. Train the course's head with your attention
#
# `ToyAttentionModel` is the course's network; `attention=` puts your function inside its head (the lab's head
# then adds no mask of its own: `causal=False` — yours does the masking). The loss is the course's: Keras'
# sparse cross-entropy on the sigmoid's output uses the sigmoid's input z as logits, so it is a softmax
# cross-entropy on z (`keras_sparse_ce`). The schedule: 10 epochs, then `EPOCHS` with the LR divided by 5
# after 10 epochs without improvement (down to 1e-4), then 10 more.

# %%
torch.manual_seed(SEED)
model = ToyAttentionModel(ToyHeadConfig(H, causal=False), attention=causal_attention)
print("parameters:", sum(p.numel() for p in model.parameters()))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.2, patience=10, min_lr=1e-4, threshold=1e-4,
                                                     threshold_mode="abs")
losses, t0 = [], time.perf_counter()
for epoch in range(10 + EPOCHS + 10):
    loss = keras_sparse_ce(model(x), y).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if 10 <= epoch < 10 + EPOCHS:
        plateau.step(loss.item())
print(f"{len(losses)} epochs in {time.perf_counter() - t0:.1f} s: loss {losses[0]:.4f} → {losses[-1]:.4f} "
      f"(the course's run: 1.9466 → 0.1619; the floor {loss_floor():.4f}); final LR {opt.param_groups[0]['lr']:.0e}")

# %%
check_toy_head(model)

# %% [markdown]
# ## 4. What did the head learn?
#
# Left: the attention weights, one row per query position (all zero above the diagonal). Right: the next-token
# probabilities, softmax(z). Look at the row of `the`: does it predict chicken after the man and beef after the
# woman, and where does its attention go?

# %%
matplotlib.use("Agg")   # draw to a file, shown below (the same in Jupyter and in the tests)
import matplotlib.pyplot as plt


def heat(ax, data, rows, cols, title):
    ax.imshow(data, cmap="viridis", vmin=0, vmax=1)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if data[i, j] > 0.5 else "white")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=8)


def picture(model, probs, name, title):
    with torch.no_grad():
        model(x)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for i, sentence in enumerate(SENTENCES):
        words = sentence.split()
        heat(axes[i][0], model.last_attention[i].numpy(), words, words, f"attention weights — {sentence}")
        heat(axes[i][1], probs[i].numpy(), words, TOKENS, "next-token probabilities")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / name, dpi=80)
    plt.close(fig)
    show(OUT / name)


with torch.no_grad():
    probs = model.next_token_probs(x)
picture(model, probs, "toy_head.png", f"your head (H = {H}, seed {SEED})")
print(f"P(chicken | man … the) = {probs[0, THE, TOKENS.index('chicken')]:.3f}, "
      f"P(beef | woman … the) = {probs[1, THE, TOKENS.index('beef')]:.3f}")

# %% [markdown]
# ## 5. Why GPT masks
#
# The same head without the mask (BERT's attention) on the same next-token task: position t can now see t + 1,
# the very token it has to predict. Its loss falls below the floor — no model that reads only the past can get
# there — and it is useless for generating text, where the next token does not exist yet. `prefix_probs` gives
# each position its prefix only, as generation does.

# %%
torch.manual_seed(SEED)
unmasked = ToyAttentionModel(ToyHeadConfig(H, causal=False))    # the lab's head, no mask
opt = torch.optim.SGD(unmasked.parameters(), lr=0.01)
for epoch in range(10 + EPOCHS + 10):
    loss = keras_sparse_ce(unmasked(x), y).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    seen = prefix_probs(unmasked, x)
    honest = -seen.gather(-1, y.unsqueeze(-1)).log().mean().item()
print(f"unmasked: loss {loss.item():.4f} (floor {loss_floor():.4f}); the loss when each position sees only its "
      f"prefix: {honest:.4f}")
for first in ("man", "woman"):
    print("generated:", " ".join(generate(unmasked, first)), "  | yours:", " ".join(generate(model, first)))

# %% [markdown]
# ## 6. From a head to a transformer
#
# The slides' next step: several heads of size H/N side by side, layer normalisation, an MLP on top, residual
# connections around both — the lab's `TransformerBlock` — and blocks stacked. `ToyTransformer` puts one (or
# more) with the causal mask on the same task; `connlab attention` trains the same block on reversing a sequence.

# %%
torch.manual_seed(SEED)
block = ToyTransformer()
opt = torch.optim.Adam(block.parameters(), lr=1e-2)
for step in range(200):
    loss = F.cross_entropy(block(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    p = p_object_at_the(block.next_token_probs(x)).item()
print(f"one TransformerBlock ({sum(q.numel() for q in block.parameters())} parameters): loss {loss.item():.4f}, "
      f"P(right object | the) {p:.3f}")

# %% [markdown]
# ## Questions
#
# 1. Change H to 10 and 40, and the seed: does a larger head help or hurt? (`connlab attention --preset course
#    --seeds 5` runs the sweep over seeds, with intervals.)
# 2. In the attention row of `the`, which positions get the weight? Why is looking at `man` / `woman` enough?
# 3. Remove the skip-add (`out + x` → `out`): what can the head no longer do on its own?
# 4. The unmasked head's loss is below ln 2 / 5. Which position's prediction got better, and what did it read?
