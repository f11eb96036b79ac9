"""Several seeds of one small network trained together, as one vmapped model.

A verdict over seeds needs ≥ 5 of them, and on a CPU a small network (an MLP, a GRU with 32
units) spends most of a step in per-operation overhead, not arithmetic. Stacking K copies'
weights along a new leading axis (as ``torch.func.stack_module_state`` does) and running the K
forward passes as one ``vmap`` of ``functional_call`` turns K small steps into one step on
K-times-larger tensors.

Why this is exactly K independent runs: the loss is the *sum* of the K per-copy losses, so
the gradient of copy k's weight slice is copy k's own gradient; Adam (and SGD, and decoupled
weight decay) update each element from that element's gradient alone. So copy k follows the
run it would follow alone, given the same initial weights and batches (``tests/test_seeds.py``
checks it to float tolerance). What would couple the copies — and is therefore refused or
left out — is anything that mixes elements across the stack: gradient clipping by a global
norm, and BatchNorm's running statistics (in-place buffer updates do not vmap). Random layers
(dropout) draw per copy (``randomness="different"``), but not the numbers a lone run would draw.

    group = SeedGroup(lambda: make_mlp("skip", 64, 2), seeds=[0, 1, 2, 3, 4])
    opt = torch.optim.Adam(group.parameters(), lr=1e-3)
    logits = group(x)                       # x (K, B, ...) -> (K, B, 10): copy k sees x[k]
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(0, 1), reduction="none").view(K, -1).mean(1).sum()
    model_2 = group.module(2)               # an ordinary nn.Module with copy 2's weights
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from connlab.errors import UserError


class SeedGroup:
    """K copies of the network ``make_model()`` builds, copy k initialised under ``torch.manual_seed(seeds[k])``."""

    def __init__(self, make_model: Callable[[], nn.Module], seeds: Sequence[int],
                 device: torch.device | str = "cpu") -> None:
        if len(seeds) < 1:
            raise UserError("a seed group needs at least one seed")
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(make_model().to(device))
        for m in models[0].modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                raise UserError(f"{type(m).__name__} keeps running statistics, which cannot be trained under vmap; "
                                f"train these seeds one by one")
        self.seeds = list(seeds)
        # What torch.func.stack_module_state does, without its same-class check (a network built
        # by a factory function is a new class per call): name -> (K, ...) leaf tensors.
        named = [dict(m.named_parameters()) for m in models]
        self.params = {k: torch.stack([n[k].detach() for n in named]).requires_grad_() for k in named[0]}
        named = [dict(m.named_buffers()) for m in models]
        self.buffers = {k: torch.stack([n[k] for n in named]) for k in named[0]}
        self._template = copy.deepcopy(models[0])
        self._base = copy.deepcopy(models[0]).to("meta")  # the structure only; weights come from the stack

    def __len__(self) -> int:
        return len(self.seeds)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def __call__(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        """x (K, B, ...) -> (K, B, ...): copy k runs on x[k] (and rest[i][k])."""
        if x.shape[0] != len(self):
            raise ValueError(f"input's leading axis must be the {len(self)} copies, got {tuple(x.shape)}")

        def one(params, buffers, *inputs):
            return functional_call(self._base, (params, buffers), inputs)

        return vmap(one, randomness="different")(self.params, self.buffers, x, *rest)

    def module(self, k: int) -> nn.Module:
        """An ordinary module holding copy k's current weights (for evaluation, saving, figures)."""
        model = copy.deepcopy(self._template)
        state = {name: t[k].detach().clone() for name, t in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        return model


def per_copy_mean(losses: torch.Tensor) -> torch.Tensor:
    """(K, B, ...) unreduced losses -> (K,) each copy's mean loss; sum it to step all copies at once."""
    return losses.flatten(1).mean(1)
