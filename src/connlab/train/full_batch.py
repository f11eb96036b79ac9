"""Full-batch training of K stacked copies, the way the course's Keras notebook trains its toy head.

The toy corpus is one batch (two sentences, ``batch_size=2``), so an epoch is one step and
``model.fit(..., epochs=E)`` is E steps of plain SGD. The course calls ``fit`` three times
(10 + 5,000 + 10 epochs) and gives only the middle one Keras' ``ReduceLROnPlateau`` on the
training loss; the learning rate it reaches carries into the last call. ``Phase`` is one call.

Each copy of a stack keeps its own learning rate and plateau state, so K copies train exactly
as K separate Keras runs would: the loss is the sum of the per-copy losses, SGD updates each
element from its own gradient, and the LR of copy k is applied to copy k's slices only
(every parameter's leading axis is the copy).

Keras' plateau rule (keras.callbacks.ReduceLROnPlateau, mode "min"): an epoch improves when its
loss < best − min_delta; after ``patience`` epochs without improvement lr <- max(lr · factor,
min_lr) (when lr > min_lr) and the count restarts. The monitored loss is the epoch's logged loss,
computed before that epoch's update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class Plateau:
    factor: float = 0.2
    patience: int = 10
    min_lr: float = 1e-4
    min_delta: float = 1e-4    # Keras' default


@dataclass(frozen=True)
class Phase:
    epochs: int
    plateau: Plateau | None = None


def train_full_batch(params: Sequence[torch.Tensor], losses: Callable[[], torch.Tensor], phases: Sequence[Phase],
                     lr: float, optimizer: str = "sgd") -> dict:
    """Train the stacked ``params`` (leading axis: K copies) on ``losses() -> (K,)``.

    ``optimizer``: "sgd" (the course's, per-copy LR and plateau) or "adam" (torch's Adam, one
    constant LR; plateaus are refused). Returns {"loss": (K, steps) logged losses, "lr": (K,)
    final LRs, "reductions": per copy, the epochs (1-based, within their phase) where the LR fell}.
    """
    # Tensors of a few hundred numbers: a second CPU thread only adds synchronisation to every operation
    # (measured on 2 shared cores: ~2 ms per step with one thread, ~30 ms with two).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(list(params), losses, phases, lr, optimizer)
    finally:
        torch.set_num_threads(threads)


def _train(params, losses, phases, lr, optimizer) -> dict:
    k = params[0].shape[0]
    rate = torch.full((k,), float(lr), dtype=params[0].dtype)
    logged: list[torch.Tensor] = []
    reductions: list[list[tuple[int, int]]] = [[] for _ in range(k)]
    adam = None
    if optimizer == "adam":
        if any(p.plateau for p in phases):
            raise ValueError("the Adam path keeps one constant learning rate; a plateau schedule needs sgd")
        adam = torch.optim.Adam(params, lr=lr)
    elif optimizer != "sgd":
        raise ValueError(f"optimizer must be sgd or adam, got {optimizer!r}")
    for index, phase in enumerate(phases):
        best = torch.full((k,), float("inf"))
        wait = torch.zeros(k, dtype=torch.long)
        for epoch in range(1, phase.epochs + 1):
            loss = losses()
            grads = torch.autograd.grad(loss.sum(), params)
            with torch.no_grad():
                if adam is None:
                    for p, g in zip(params, grads):
                        p -= rate.view(-1, *[1] * (p.dim() - 1)) * g
                else:
                    for p, g in zip(params, grads):
                        p.grad = g
                    adam.step()
            current = loss.detach()
            logged.append(current)
            if phase.plateau is not None:
                rule = phase.plateau
                improved = current < best - rule.min_delta
                best = torch.where(improved, current, best)
                wait = torch.where(improved, 0, wait + 1)
                due = (wait >= rule.patience) & (rate > torch.tensor(rule.min_lr, dtype=rate.dtype))
                for c in due.nonzero().flatten().tolist():
                    reductions[c].append((index, epoch))
                rate = torch.where(due, torch.clamp(rate * rule.factor, min=rule.min_lr), rate)
                wait = torch.where(due, 0, wait)  # Keras restarts the count only when it lowered the LR
    loss = torch.stack(logged, dim=1) if logged else torch.empty(k, 0)
    return {"loss": loss, "lr": rate, "reductions": reductions}
