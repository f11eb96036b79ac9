"""The course's toy attention task: two sentences, seven tokens, one attention head.

The corpus (C24_toytask_attentionhead_v1): ``<Start> man ordered the chicken`` and ``<Start>
woman ordered the beef``; the target at each position is the next token, and the last position's
target is ``<Start>``. After ``the`` the object depends on who ordered, three tokens back: a
model that predicts it must look back, which is what attention is for.

The course's network (413 parameters at H = 20): a token embedding V -> E = V and a learned
position embedding T -> E, added (x); one attention head (``connlab.nn.attention.AttentionHead``:
Q, K to H, V to E, no biases, scores / √H, the causal mask, softmax over the keys); the head's
output plus x (the "skip-add"), z; a sigmoid. The loss is Keras' sparse categorical
cross-entropy with ``from_logits=False`` on the sigmoid's output, and Keras (2.5 and later) does
not take those outputs at their word: its ``sigmoid`` caches its input z on the output tensor
(``_keras_logits``) and the loss then uses z as logits (``keras.backend._get_logits``). So the
course trains a softmax cross-entropy on z (``keras_sparse_ce``), and the next-token distribution
it learns is softmax(z); the sigmoid outputs are what the notebook prints.

Glossary: V = 7 tokens, T = 5 positions, E = V embedding size, H head size.

``ToyTransformer`` is the same task for the lab's ``TransformerBlock`` (several heads, layer
norm, MLP, residuals), stacked ``depth`` times: the slides' walk from a head to a transformer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from connlab.nn.attention import AttentionHead, TransformerBlock, causal_mask

TOKENS = ("<Start>", "the", "man", "chicken", "ordered", "woman", "beef")
SENTENCES = ("<Start> man ordered the chicken", "<Start> woman ordered the beef")
THE = 3                                   # the position of `the` in both sentences
OBJECTS = ("chicken", "beef")             # the right object after `the`, per sentence
KERAS_EMBEDDING_LIMIT = 0.05              # Keras' Embedding starts uniform in ±0.05


def encode(sentence: str) -> list[int]:
    """Token ids of a sentence written with the seven tokens (ValueError naming an unknown word)."""
    words = sentence.split()
    unknown = [w for w in words if w not in TOKENS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not one of the tokens {', '.join(TOKENS)}")
    return [TOKENS.index(w) for w in words]


def corpus(sentences=SENTENCES) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, T) and next-token targets (N, T); the last position's target is the first token."""
    x = torch.tensor([encode(s) for s in sentences])
    return x, torch.cat([x[:, 1:], x[:, :1]], dim=1)


def loss_floor(sentences=SENTENCES) -> float:
    """The lowest mean per-token loss a causal model can reach on the corpus (each sentence equally likely).

    At position t a causal model sees the prefix x_0..x_t only; the best it can do is the
    conditional distribution of the next token given that prefix, whose entropy is the floor there.
    For the course's corpus only position 0 is uncertain (man or woman, ½ each): 2 of the 10
    tokens cost ln 2 each, so the floor is ln 2 / 5.
    """
    x, y = corpus(sentences)
    n, length = x.shape
    total = 0.0
    for t in range(length):
        groups: dict[tuple, list[int]] = {}
        for i in range(n):
            groups.setdefault(tuple(x[i, :t + 1].tolist()), []).append(int(y[i, t]))
        for targets in groups.values():
            for target in targets:
                total -= math.log(targets.count(target) / len(targets))
    return total / (n * length)


def keras_sparse_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The course's loss per token: logits z (..., V), targets (...) -> (...).

    Keras' SparseCategoricalCrossentropy(from_logits=False) on sigmoid(z) finds z cached on the
    sigmoid's output and computes the softmax cross-entropy −log softmax(z)_y on it.
    """
    return -torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class ToyHeadConfig:
    head_size: int = 20
    causal: bool = True          # GPT's mask; False: BERT's none
    attention: bool = True       # False: the head's output removed, the skip-add path alone
    vocab: int = len(TOKENS)
    length: int = 5

    def __post_init__(self):
        if self.head_size < 1:
            raise ValueError(f"head size must be >= 1, got {self.head_size}")


class ToyAttentionModel(nn.Module):
    """The course's toy head: tokens (B, L) -> logits z (B, L, V) (the sigmoid's input), L <= T."""

    def __init__(self, cfg: ToyHeadConfig = ToyHeadConfig(), attention=None) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.vocab  # the course embeds into V dimensions, so x itself can be read as scores per token
        self.token_embed = nn.Embedding(cfg.vocab, e)
        self.pos_embed = nn.Embedding(cfg.length, e)
        self.head = AttentionHead(e, cfg.head_size, e, causal=cfg.causal, attention=attention)
        self.last_attention: torch.Tensor | None = None
        self.keras_init_()

    @torch.no_grad()
    def keras_init_(self) -> None:
        """Keras' defaults, from the global RNG (seeded per run): Embedding uniform ±0.05, Dense Glorot-uniform."""
        for emb in (self.token_embed, self.pos_embed):
            nn.init.uniform_(emb.weight, -KERAS_EMBEDDING_LIMIT, KERAS_EMBEDDING_LIMIT)
        for lin in (self.head.q, self.head.k, self.head.v):
            nn.init.xavier_uniform_(lin.weight)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) -> x = token + position embedding (B, L, V)."""
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        return self.token_embed(tokens) + self.pos_embed(positions)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) -> z (B, L, V), the sigmoid's input; the head's weights (B, L, L) in ``last_attention``."""
        x = self.embed(tokens)
        out, weights = self.head(x)
        self.last_attention = weights.detach()
        if not self.cfg.attention:
            out = torch.zeros_like(out)  # ablation: only the skip-add path reaches the output
        return out + x  # the skip-add: the embedded input added to the head's output

    def sigmoid_outputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, V): the course's model output, sigmoid(z)."""
        return torch.sigmoid(self(tokens))

    def next_token_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) -> the next-token distribution the loss trains, softmax(z) (B, L, V)."""
        return torch.softmax(self(tokens), dim=-1)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean per-token loss, as Keras reports it."""
        return keras_sparse_ce(self(tokens), targets).mean()


@dataclass(frozen=True)
class ToyTransformerConfig:
    dim: int = 16
    heads: int = 2
    depth: int = 1
    mlp_ratio: int = 2
    causal: bool = True
    vocab: int = len(TOKENS)
    length: int = 5

    def __post_init__(self):
        if self.heads < 1 or self.dim % self.heads != 0:
            raise ValueError(f"embedding size {self.dim} is not divisible by {self.heads} heads")


class ToyTransformer(nn.Module):
    """Token + position embedding, ``depth`` pre-norm TransformerBlocks (causal mask), norm, read-out.

    tokens (B, L) -> logits (B, L, V); each block's weights (B, heads, L, L) in its ``last_attention``.
    """

    def __init__(self, cfg: ToyTransformerConfig = ToyTransformerConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.pos_embed = nn.Embedding(cfg.length, cfg.dim)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.readout = nn.Linear(cfg.dim, cfg.vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[-1]
        h = self.token_embed(tokens) + self.pos_embed(torch.arange(length, device=tokens.device))  # (B, L, dim)
        mask = causal_mask(length, device=tokens.device) if self.cfg.causal else None
        for block in self.blocks:
            h = block(h, mask)
        return self.readout(self.norm(h))

    def next_token_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(tokens), dim=-1)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self(tokens).flatten(0, -2), targets.flatten())


def p_object_at_the(probs: torch.Tensor) -> torch.Tensor:
    """(..., 2, T, V) next-token distributions of the two sentences -> (...) the mean of the right
    object's probability at `the` (chicken in the man-sentence, beef in the woman-sentence)."""
    objects = [TOKENS.index(o) for o in OBJECTS]
    return (probs[..., 0, THE, objects[0]] + probs[..., 1, THE, objects[1]]) / 2


@torch.no_grad()
def generate(model: nn.Module, first: str, length: int = 5) -> list[str]:
    """Greedy generation one token at a time from ``<Start> first``: each step sees the prefix only."""
    tokens = encode(f"<Start> {first}")
    while len(tokens) < length:
        probs = model.next_token_probs(torch.tensor([tokens]))
        tokens.append(int(probs[0, -1].argmax()))
    return [TOKENS[t] for t in tokens]


@torch.no_grad()
def prefix_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, T) sentences -> (N, T, V): position t's next-token distribution when the model sees x_0..x_t only,
    as it does while generating (a causal model gives the same numbers as on the whole sentence)."""
    rows = [model.next_token_probs(x[:, :t + 1])[:, t] for t in range(x.shape[1])]
    return torch.stack(rows, dim=1)


class ToyHeadStack(nn.Module):
    """K toy heads (any mix of head sizes, masks and ablations) as one set of stacked tensors.

    Training 5,020 full-batch steps of a 413-parameter network is all per-operation overhead on a
    CPU, so the seeds and variants of one experiment run as one network on K-times-larger tensors.
    Copy k starts from the weights ``ToyAttentionModel(configs[k])`` gets under
    ``torch.manual_seed(seeds[k])``; a head smaller than the largest is zero-padded and its padded
    columns are masked out of every forward pass (so they get no gradient and stay zero), and its
    scores are scaled by its own 1/√H. Each copy's loss depends on its own slices only, so summing
    the K losses trains K independent networks. ``module(k)`` gives copy k as a ``ToyAttentionModel``.
    """

    def __init__(self, configs, seeds) -> None:
        super().__init__()
        configs, seeds = list(configs), list(seeds)
        if len(configs) != len(seeds) or not configs:
            raise ValueError(f"need one seed per config, got {len(configs)} configs and {len(seeds)} seeds")
        if len({(c.vocab, c.length) for c in configs}) != 1:
            raise ValueError("every copy needs the same vocabulary and length")
        self.configs = configs
        h_max = max(c.head_size for c in configs)
        stacks: dict[str, list[torch.Tensor]] = {n: [] for n in ("token", "pos", "wq", "wk", "wv")}
        for cfg, seed in zip(configs, seeds):
            torch.manual_seed(seed)
            m = ToyAttentionModel(cfg)
            pad = (0, h_max - cfg.head_size)
            stacks["token"].append(m.token_embed.weight.detach())
            stacks["pos"].append(m.pos_embed.weight.detach())
            stacks["wq"].append(nn.functional.pad(m.head.q.weight.detach().T, pad))  # (E, H_max): x @ W
            stacks["wk"].append(nn.functional.pad(m.head.k.weight.detach().T, pad))
            stacks["wv"].append(m.head.v.weight.detach().T)
        for name, tensors in stacks.items():
            setattr(self, name, nn.Parameter(torch.stack(tensors)))
        length = configs[0].length
        self.register_buffer("h_mask", torch.stack([(torch.arange(h_max) < c.head_size).float() for c in configs])
                             .unsqueeze(1))  # (K, 1, H_max)
        self.register_buffer("scale", torch.tensor([1 / math.sqrt(c.head_size) for c in configs]).view(-1, 1, 1, 1))
        self.register_buffer("keep", torch.stack([causal_mask(length) if c.causal else
                                                  torch.ones(length, length, dtype=torch.bool) for c in configs]))
        self.register_buffer("gate", torch.tensor([float(c.attention) for c in configs]).view(-1, 1, 1, 1))

    def __len__(self) -> int:
        return len(self.configs)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (N, L) -> logits z (K, N, L, V) and weights (K, N, L, L)."""
        n, length = tokens.shape
        x = self.token[:, tokens.flatten()] + self.pos[:, :length].repeat(1, n, 1)  # (K, N·L, E)
        q = x @ (self.wq * self.h_mask)  # (K, N·L, H_max)
        k = x @ (self.wk * self.h_mask)
        v = x @ self.wv  # (K, N·L, E)
        kn = len(self) * n
        scores = q.view(kn, length, -1) @ k.view(kn, length, -1).transpose(1, 2)  # (K·N, L, L)
        scores = scores.view(len(self), n, length, length) * self.scale
        scores = scores.masked_fill(~self.keep[:, None, :length, :length], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (K, N, L, L)
        out = (weights.view(kn, length, length) @ v.view(kn, length, -1)).view(x.shape)  # (K, N·L, E)
        z = self.gate.view(-1, 1, 1) * out + x  # the skip-add
        return z.view(len(self), n, length, -1), weights

    def losses(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(K,) each copy's mean per-token loss on the corpus."""
        return keras_sparse_ce(self(tokens)[0], targets.expand(len(self), *targets.shape)).flatten(1).mean(1)

    @torch.no_grad()
    def module(self, k: int) -> ToyAttentionModel:
        """Copy k as an ordinary ``ToyAttentionModel`` (its current weights)."""
        cfg = self.configs[k]
        m = ToyAttentionModel(cfg)
        m.token_embed.weight.copy_(self.token[k])
        m.pos_embed.weight.copy_(self.pos[k])
        m.head.q.weight.copy_(self.wq[k, :, :cfg.head_size].T)
        m.head.k.weight.copy_(self.wk[k, :, :cfg.head_size].T)
        m.head.v.weight.copy_(self.wv[k].T)
        return m
