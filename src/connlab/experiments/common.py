"""The settings every training command shares (fields that are flags), and the flag value parsers."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from connlab.errors import UserError
from connlab.experiments.config import Config, flag
from connlab.runs import prepare_run
from connlab.runtime import speed
from connlab.runtime.settings import RunSettings
from connlab.runtime.speed import Speed
from connlab.train import TrainConfig


def from_flags(build, *args, **kwargs):
    """``build(*args, **kwargs)`` for a config made from user flags (a model's, a noise ladder's):
    its ValueError names a bad flag value, so it becomes a UserError (one line, exit 2).
    Everywhere else a ValueError is a bug and keeps its traceback."""
    try:
        return build(*args, **kwargs)
    except UserError:
        raise
    except ValueError as err:
        raise UserError(str(err)) from None


# No count, size or step of the lab comes near 2^31 (torch indexes many kernels with int32): a larger
# value is a typo, refused as one line instead of an overflow deep inside torch.
LARGEST_INT = 2**31 - 1
LARGEST_SEED = 2**32 - 1   # numpy's and most tools' seed range; torch's seeds are derived from it


def int_at_least(minimum: int, maximum: int = LARGEST_INT):
    """A flag parser: an integer in ``minimum`` .. ``maximum``, else argparse's one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)
seed_int = int_at_least(0, LARGEST_SEED)


def int_list(minimum: int, what: str):
    """A flag parser: ``2,8,20`` -> (2, 8, 20), each >= ``minimum``; ``what`` names the values in errors."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
        if not values:
            raise argparse.ArgumentTypeError(f"give at least one of the {what}")
        bad = [v for v in values if v < minimum]
        if bad:
            raise argparse.ArgumentTypeError(f"{what} must be >= {minimum}, got {bad[0]}")
        bad = [v for v in values if v > LARGEST_INT]
        if bad:
            raise argparse.ArgumentTypeError(f"{what} must be <= {LARGEST_INT}, got {bad[0]}")
        return values

    return parse


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


TRAINING = "common training flags"


def speed_flag(name: str, group: str | None = TRAINING, help: str | None = None):
    """The flag of speed switch ``name``: ``Speed``'s default, choices and help (what ``auto`` means)."""
    choices = speed.PRECISIONS if name == "precision" else speed.SWITCH
    return flag(getattr(Speed, name), help or speed.HELP[name], choices=choices, group=group)


@dataclass(frozen=True)
class TrainingSettings(Config):
    """The settings every training command shares, one field (and flag) each.

    An experiment's config inherits these and redeclares a field only to change its default
    (``epochs: int = 3``); the flag keeps its help. The names are config.json's keys and match
    ``TrainConfig``'s: ``train_config`` copies every field the two share. The defaults are
    ``RunSettings``' and ``Speed``'s (``connlab.runtime``), which ``TrainConfig`` is made of.
    """

    epochs: int = flag(RunSettings.epochs, "passes over the training set", type=positive_int, group=TRAINING)
    batch_size: int = flag(RunSettings.batch_size, "", type=positive_int, group=TRAINING)
    lr: float = flag(RunSettings.lr, "learning rate", type=positive_float, group=TRAINING)
    seed: int = flag(RunSettings.seed, "random seed", type=seed_int, group=TRAINING)
    device: str = flag(RunSettings.device, "auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps", show_default=False,
                       group=TRAINING)
    precision: str = speed_flag("precision")
    compile: str = speed_flag("compile")
    channels_last: str = speed_flag("channels_last")
    cuda_graph: str = speed_flag("cuda_graph")
    malloc_cache: str = speed_flag("malloc_cache")
    checkpoint_every: int = flag(RunSettings.checkpoint_every, "steps between checkpoints", type=positive_int,
                                 group=TRAINING)

    def train_config(self, **overrides) -> TrainConfig:
        """The trainer's config: every field whose name ``TrainConfig`` shares, then ``overrides`` (the
        experiment's recipe: optimizer, lr_schedule, warmup_steps, grad_clip, a per-run seed, ...)."""
        shared = {f.name for f in fields(TrainConfig)} & {f.name for f in fields(self)}
        return TrainConfig(**{**{name: getattr(self, name) for name in shared}, **overrides})


@dataclass(frozen=True)
class DataSettings(Config):
    """Which images a training command reads (for the experiments on MNIST-like digits)."""

    dataset: str = flag("mnist", "mnist (full if found, else embedded), mnist-embedded, fashion", group=TRAINING)
    data_dir: str | None = flag(None, "folder with the four IDX files (raw or .gz)", type=str, group=TRAINING)
    limit: int | None = flag(None, "use the first N training images (stratified)", type=positive_int,
                             group=TRAINING)


def add_run_flags(p: argparse.ArgumentParser, experiment: str) -> None:
    """``--out`` and ``--resume``: where the run folder is, not what the run is (so not config fields)."""
    g = next((g for g in p._action_groups if g.title == TRAINING), None) or p.add_argument_group(TRAINING)
    g.add_argument("--out", type=Path, default=None, help=f"run folder (default runs/{experiment}-<timestamp>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (with its saved config; "
                        "a flag that differs from it is refused)")


def run_training(args: argparse.Namespace, experiment: str, cfg, run_experiment, describe) -> int:
    """A training command once its config is built (and checked): open the run folder (a new one, or
    with ``--resume`` the saved run, refusing flags that differ from it), ``run_experiment(cfg, out,
    resume)``, then print ``describe(summary, cfg)`` and the folder."""
    out, cfg = prepare_run(args.out, experiment, cfg, args.resume, type(cfg).given(args))
    summary = run_experiment(cfg, out, resume=args.resume)
    print(describe(summary, cfg))
    print(f"run folder: {out}", file=sys.stderr)
    return 0


def add_training_command(p: argparse.ArgumentParser, cls, experiment: str, run_experiment, describe,
                         config=None) -> None:
    """The usual training command: ``cls``'s flags, and a ``run`` that builds the config
    (``config(args)``, which may check it, default ``cls.from_args``) and hands it to ``run_training``."""

    def run(args: argparse.Namespace) -> int:
        return run_training(args, experiment, (config or cls.from_args)(args), run_experiment, describe)

    add_config_flags(p, cls, experiment, run)


def add_config_flags(p: argparse.ArgumentParser, cls, experiment: str, run) -> None:
    """The command's flags: its config's fields, then ``--out``/``--resume``; ``run`` is called with the args."""
    cls.add_flags(p)
    add_run_flags(p, experiment)
    p.set_defaults(run=run)
