"""The training state: what a checkpoint holds, how it is taken, and how a run picks it up again.

A checkpoint (``connlab.checkpoint``) is the model's weights plus ``snapshot``: step, history,
the running loss sum and clocks, optimizer, LR scheduler, the noise generator, the global RNG,
the EMA and what early stopping has seen. ``restore`` puts every one of them back, so N steps in one go and N/2 + resume give
bitwise-identical weights on CPU.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from connlab.checkpoint import UnreadableCheckpoint, list_checkpoints, read_checkpoint
from connlab.errors import UserError
from connlab.runtime import distributed as dp


@dataclass
class Parts:
    """The objects whose state a checkpoint holds besides the weights."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    ema: object | None = None


@dataclass
class TrainState:
    """Where the run is: ``loss_sum`` is this epoch's summed loss, kept on the device."""

    loss_sum: torch.Tensor
    step: int = 0
    history: list[dict] = field(default_factory=list)
    epoch_seconds: float = 0.0
    train_seconds: float = 0.0
    resumed_from: str | None = None
    stopping: dict | None = None   # ``callbacks.EarlyStopping``'s state (None: no early stopping)

    @property
    def stopped(self) -> bool:
        """Early stopping has ended this run (its epoch is ``stopping["stopped_epoch"]``)."""
        return self.stopping is not None and self.stopping.get("stopped_epoch") is not None

    def lap(self, seconds: float) -> None:
        """Count ``seconds`` of training in this epoch and in the run."""
        self.epoch_seconds += seconds
        self.train_seconds += seconds


def snapshot(state: TrainState, parts: Parts) -> dict:
    """Everything but the weights, for a checkpoint (a collective under torchrun: every rank calls it)."""
    return {
        "step": state.step, "history": state.history,
        "epoch_loss_sum": float(dp.mean_over_ranks(state.loss_sum).item()),
        "epoch_seconds": state.epoch_seconds, "train_seconds": state.train_seconds,
        "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
        "generator": parts.generator.get_state(), "torch_rng": torch.get_rng_state(),
        **({"ema": parts.ema.state_dict()} if parts.ema is not None else {}),
        **({"early_stopping": state.stopping} if state.stopping is not None else {}),
    }


def restore(saved: dict, parts: Parts, device: torch.device, lr_on_device: bool) -> TrainState:
    """Put a checkpoint's state back into ``parts`` (its weights are already loaded); the state to go on from."""
    parts.optimizer.load_state_dict(saved["optimizer"])
    if lr_on_device:  # a CUDA graph replays the optimizer: its lr must be a device tensor (a loaded one is not)
        for group in parts.optimizer.param_groups:
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
    parts.scheduler.load_state_dict(saved["scheduler"])
    parts.generator.set_state(saved["generator"].to("cpu") if device.type == "cpu" else saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    if parts.ema is not None and "ema" in saved:
        parts.ema.load_state_dict(saved["ema"])
    return TrainState(loss_sum=torch.tensor(saved["epoch_loss_sum"], device=device), step=saved["step"],
                      history=list(saved["history"]), epoch_seconds=saved["epoch_seconds"],
                      train_seconds=saved["train_seconds"], stopping=saved.get("early_stopping"))


def start(ckpt_dir: Path, out: Path, resume: bool, parts: Parts, signature: dict, device: torch.device,
          lr_on_device: bool) -> TrainState:
    """A fresh state, or with ``resume`` the state of the newest readable checkpoint.

    A checkpoint that cannot be read (a truncated file) is skipped with a one-line notice and the
    one before it is used (two are kept); a checkpoint of another model is an error, not skipped.
    """
    existing = list_checkpoints(ckpt_dir)
    if existing and not resume:
        raise UserError(f"{out} already holds checkpoints of a run; pass --resume to continue it or choose another --out")
    if not resume:
        return TrainState(loss_sum=torch.zeros((), device=device))
    if not existing:
        raise UserError(f"--resume: no checkpoint in {ckpt_dir}")
    for stale in ckpt_dir.glob(".tmp-step-*") if dp.is_main() else ():  # writes cut short by a kill
        shutil.rmtree(stale, ignore_errors=True)
    for path in reversed(existing):
        try:
            saved = read_checkpoint(path, parts.model, signature)
        except UnreadableCheckpoint as err:
            if path == existing[0]:
                raise
            if dp.is_main():
                print(f"connlab: {err}; resuming from the checkpoint before it", file=sys.stderr)
            continue
        state = restore(saved, parts, device, lr_on_device)
        state.resumed_from = str(path)
        return state
    raise AssertionError("unreachable: the oldest checkpoint either loads or raises")
