"""What a training run is given: its config, its device, its shuffle; and what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from connlab.errors import UserError
from connlab.runtime.settings import RunSettings
from connlab.runtime.speed import Speed


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig(RunSettings, Speed):
    """The trainer's config: the run settings (epochs, batch size, lr, seed, device, checkpoint_every:
    ``connlab.runtime.settings``), the speed switches (``connlab.runtime.speed.Speed``, checked there)
    and the recipe's details below; every default is declared once, in its own class."""

    weight_decay: float = 0.0
    optimizer: str = "adam"        # adam | adamw
    lr_schedule: str = "constant"  # constant | cosine (with linear warm-up)
    warmup_steps: int = 0
    grad_clip: float = 0.0         # 0 = off
    sync_every: int = 20           # steps between host reads of the loss

    def __post_init__(self):
        Speed.__post_init__(self)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adam", "adamw"):
            raise UserError(f"optimizer {self.optimizer!r} is not one of adam, adamw")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"lr schedule {self.lr_schedule!r} is not one of constant, cosine")

    @property
    def speed(self) -> Speed:
        """The speed switches of this config, to resolve for a device (``Speed.resolve``)."""
        return Speed.of(self)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must exist here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"--device {name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                        f"(cuda:0 .. cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


class LossFn(Protocol):
    def __call__(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...],
                 generator: torch.Generator) -> torch.Tensor: ...


@dataclass
class TrainResult:
    epochs: int
    steps: int
    train_seconds: float
    train_images_per_second: float
    final_train_loss: float
    history: list[dict] = field(default_factory=list)
    resumed_from: str | None = None
    stopped_epoch: int | None = None   # the epoch early stopping ended the run after; None: it ran them all


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch ``epoch``: a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier at each step: linear warm-up, then constant or cosine decay."""
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0
    return factor
