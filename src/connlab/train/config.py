"""What a training run is given: its config, its device, its shuffle; and what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from connlab.errors import UserError
from connlab.runtime.speed import PRECISIONS, SWITCHES, Speed, check_speed_settings  # noqa: F401 - re-exported


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"        # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: str = "auto"          # auto = off (see runtime/speed.py); "on" compiles the model
    channels_last: str = "auto"    # auto: on (measured faster for the lab's conv nets on CPU); "on" / "off"
    cuda_graph: str = "auto"       # auto: the whole step as one CUDA graph on CUDA (single process); "on" / "off"
    malloc_cache: str = "auto"     # auto: on CPU, keep freed memory for reuse (connlab.runtime.cpu_memory)
    optimizer: str = "adam"        # adam | adamw
    lr_schedule: str = "constant"  # constant | cosine (with linear warm-up)
    warmup_steps: int = 0
    grad_clip: float = 0.0         # 0 = off
    checkpoint_every: int = 500    # steps; a checkpoint is also written at every epoch end
    sync_every: int = 20           # steps between host reads of the loss

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        check_speed_settings(self, SWITCHES)
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
