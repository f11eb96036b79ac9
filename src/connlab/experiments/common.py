"""Flags every training command shares, and their translation into typed configs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connlab.train import TrainConfig


@dataclass(frozen=True)
class TrainingSettings:
    """The training settings of every experiment that takes ``add_common``'s flags, one field per flag.

    An experiment's config inherits these and redeclares a field only to change its default
    (``epochs: int = 3``). The names are config.json's keys: ``connlab.runs.prepare_run``
    rebuilds a saved config from them on ``--resume``.
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    dataset: str = "mnist"
    data_dir: str | None = None  # a str, not a Path, so config.json stays JSON
    limit: int | None = None
    precision: str = "auto"
    compile: str = "auto"
    channels_last: str = "auto"
    cuda_graph: str = "auto"
    malloc_cache: str = "auto"
    checkpoint_every: int = 500

    @classmethod
    def from_args(cls, args: argparse.Namespace, **own):
        """The config from ``add_common``'s flags in ``args`` plus the experiment's ``own`` fields (which win)."""
        common = {f.name: getattr(args, f.name) for f in fields(TrainingSettings)}
        common["data_dir"] = str(args.data_dir) if args.data_dir else None
        return cls(**{**common, **own})

    def train_config(self, **overrides) -> TrainConfig:
        """The trainer's config from these settings; ``overrides`` sets the experiment's recipe
        (optimizer, lr_schedule, warmup_steps, grad_clip, weight_decay, a per-run seed, ...)."""
        from connlab.train import TrainConfig

        base = dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed, device=self.device,
                    precision=self.precision, compile=self.compile, channels_last=self.channels_last,
                    cuda_graph=self.cuda_graph, malloc_cache=self.malloc_cache,
                    checkpoint_every=self.checkpoint_every)
        return TrainConfig(**{**base, **overrides})


def from_flags(build, *args, **kwargs):
    """``build(*args, **kwargs)`` for a config made from user flags (a model's, a noise ladder's):
    its ValueError names a bad flag value, so it becomes a UserError (one line, exit 2).
    Everywhere else a ValueError is a bug and keeps its traceback."""
    from connlab.errors import UserError

    try:
        return build(*args, **kwargs)
    except UserError:
        raise
    except ValueError as err:
        raise UserError(str(err)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0, got 0")
    return value


def add_common(p: argparse.ArgumentParser, *, epochs: int, batch_size: int = 128, lr: float = 1e-3,
               dataset: str = "mnist") -> None:
    g = p.add_argument_group("common training flags")
    g.add_argument("--epochs", type=positive_int, default=epochs, help=f"passes over the training set (default {epochs})")
    g.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"(default {batch_size})")
    g.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default {lr})")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    g.add_argument("--dataset", default=dataset, help="mnist (full if found, else embedded), mnist-embedded, fashion")
    g.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files (raw or .gz)")
    g.add_argument("--limit", type=positive_int, default=None, help="use the first N training images (stratified)")
    g.add_argument("--out", type=Path, default=None, help="run folder (default runs/<experiment>-<timestamp>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    g.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help="torch.compile (auto: on CUDA)")
    g.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                   help="NHWC memory format for convolutions (auto: on)")
    g.add_argument("--cuda-graph", default="auto", choices=("auto", "on", "off"),
                   help="replay each training step as one CUDA graph (auto: on CUDA, single process)")
    g.add_argument("--malloc-cache", default="auto", choices=("auto", "on", "off"),
                   help="keep memory freed by a training step for the next one instead of page-faulting it in "
                        "again (glibc; auto: on CPU)")
    g.add_argument("--checkpoint-every", type=positive_int, default=500, help="steps between checkpoints (default 500)")

