"""The small pieces the loop calls: progress bar, NaN guard, epoch evaluation and log, test hooks."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Callable

import torch

from connlab.checkpoint import list_checkpoints
from connlab.runtime import distributed as dp
from connlab.train.config import TrainingDiverged


class Progress:
    """One epoch's progress bar (on a terminal or in a Jupyter notebook, rank 0 only): loss and images per second.

    Jupyter shows tqdm's text bar on stderr (no widget dependency); in a log file (a batch job, the demo's
    parts) the bar is off.
    """

    def __init__(self, total: int, first: int, desc: str):
        from tqdm import tqdm

        interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
        self.bar = tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True,
                        disable=not interactive or not dp.is_main())
        self.bar.update(first)

    def show(self, mean_loss: float, images: int, seconds: float) -> None:
        self.bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{images / max(seconds, 1e-9):.0f}")

    def advance(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def check_finite(mean_loss: float, step: int, epoch: int, ckpt_dir: Path) -> None:
    """The NaN guard: stop with ``TrainingDiverged``, naming the last good checkpoint, if the loss is not finite."""
    if math.isfinite(mean_loss):
        return
    kept = list_checkpoints(ckpt_dir)
    raise TrainingDiverged(f"training diverged: loss is {mean_loss} by step {step} (epoch {epoch + 1}); "
                           f"last good checkpoint: {kept[-1] if kept else 'none'}")


def check_finite_weights(model: torch.nn.Module, step: int, epoch: int, ckpt_dir: Path) -> None:
    """The NaN guard for the weights: the loss of a step is computed before its update, so the last
    update of an epoch (all of it, with one step per epoch) can blow the weights up unseen by the loss."""
    params = [p.detach() for p in model.parameters()]
    if params and not bool(torch.stack([p.isfinite().all() for p in params]).all()):
        check_finite(float("nan"), step, epoch, ckpt_dir)


def step_hooks() -> list[Callable[[int], None]]:
    """Functions called with the step number after every step; the environment is read once, here."""
    kill = dp.kill_hook_from_env()  # test only: CONNLAB_TEST_KILL_RANK_AT_STEP
    return [kill] if kill is not None else []


def evaluate_epoch(model: torch.nn.Module, evaluate: Callable[[torch.nn.Module], dict], bf16: bool,
                   device: torch.device) -> dict:
    """``evaluate(model)`` in eval mode, without gradients, under the run's precision; back to train mode."""
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return evaluate(model)
    finally:
        model.train()


def log_epoch(label: str, epochs: int, line: dict) -> None:
    """The epoch's metrics line on stderr (rank 0)."""
    if dp.is_main():
        print(f"{label} epoch {line['epoch']}/{epochs}: " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items() if k != "epoch"),
            file=sys.stderr)


def metrics_text(history: list[dict]) -> str:
    """``metrics.jsonl``: one JSON line per epoch."""
    return "".join(json.dumps(line) + "\n" for line in history)
