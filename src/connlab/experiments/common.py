"""Flags every training command shares, and their translation into typed configs."""

from __future__ import annotations

import argparse
from pathlib import Path




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
    g.add_argument("--checkpoint-every", type=positive_int, default=500, help="steps between checkpoints (default 500)")


def train_config(args: argparse.Namespace, **overrides):
    from connlab.train import TrainConfig

    base = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                precision=args.precision, compile=args.compile, checkpoint_every=args.checkpoint_every)
    base.update(overrides)
    return TrainConfig(**base)
