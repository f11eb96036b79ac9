"""The small pieces the loop calls: progress bar, NaN guard, epoch evaluation and log, early stopping, test hooks."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from connlab.checkpoint import list_checkpoints
from connlab.errors import UserError
from connlab.runtime import distributed as dp
from connlab.train.config import TrainingDiverged


class Progress:
    """One epoch's progress bar (on a terminal or in a Jupyter notebook, rank 0 only): loss and images per second.

    Jupyter shows tqdm's text bar on stderr (no widget dependency); in a log file (a batch job, the demo's
    parts) the bar is off.
    """

    def __init__(self, total: int, first: int, desc: str):
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


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the epoch metric ``monitor`` has not improved for ``patience`` epochs (Keras' semantics).

    As ``tf.keras.callbacks.EarlyStopping(monitor, mode, patience, min_delta)`` with its defaults
    (``restore_best_weights=False``, no baseline, ``start_from_epoch=0``): after each epoch the
    metric counts as an improvement when it beats the best so far by more than ``min_delta``
    (lower for ``mode="min"``); otherwise the wait grows by one, and at ``patience`` epochs without
    one training stops, keeping the *last* weights, not the best. The rule is frozen; what it has
    seen lives in the training state (``fresh_state``), so a checkpoint carries it and a resumed run
    stops at the same epoch.
    """

    monitor: str
    patience: int = 5
    mode: str = "min"
    min_delta: float = 0.0

    def __post_init__(self):
        if self.patience < 1:
            raise UserError(f"early stopping: patience must be >= 1, got {self.patience}")
        if self.mode not in ("min", "max"):
            raise UserError(f"early stopping: mode must be 'min' or 'max', got {self.mode!r}")
        if not self.min_delta >= 0:
            raise UserError(f"early stopping: min_delta must be >= 0, got {self.min_delta}")

    def fresh_state(self) -> dict:
        """What the rule has seen before the first epoch (JSON-able; kept in every checkpoint)."""
        return {"rule": asdict(self), "best": None, "best_epoch": None, "wait": 0, "stopped_epoch": None}

    def update(self, state: dict, line: dict) -> bool:
        """Read epoch ``line``'s metric into ``state`` (in place); True when training stops after this epoch."""
        if state.get("rule") != asdict(self):
            raise ValueError(f"early-stopping state of another rule ({state.get('rule')}) given to {asdict(self)}")
        if self.monitor not in line:
            raise KeyError(f"early stopping monitors {self.monitor!r}, which the epoch's metrics do not hold "
                           f"({', '.join(line)}): pass an evaluate() that returns it")
        value, best = float(line[self.monitor]), state["best"]
        sign = 1.0 if self.mode == "min" else -1.0
        state["wait"] += 1
        if best is None or sign * (value - best) < -self.min_delta:
            state.update(best=value, best_epoch=line["epoch"], wait=0)
            return False
        if state["wait"] >= self.patience:
            state["stopped_epoch"] = line["epoch"]
            return True
        return False
