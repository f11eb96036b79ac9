"""``connlab ladder`` — Exercise 2: incremental denoising with T steps.

Trains the Exercise-1 U-Net to map rung t of a ladder to rung t−1 (``connlab.diffusion.ladder``;
by default the course's: one end point per digit, rungs on the straight line), then runs the chain
x̂_T -> x̂_{T−1} -> … -> x̂_0 with x̂_{t−1} = sigmoid(net(x̂_t, t)) and writes the run folder:

    summary.json       chain_psnr / chain_bce (T+1 numbers: x_T, then after each step),
                       ladder_psnr (the true rungs), from-noise statistics, train time,
                       materialize cost; "val_bce_per_seed": the validation BCE of each seed (the
                       course's val_loss: BCE of net(x_i) against x_{i−1} over the T+1 pairs of every
                       validation digit); "reproduction": the course's 0.1839 against those seeds when
                       the run is the course's protocol; per variant (and seed), and, with --sweep,
                       per T; "evidence": the claim's comparisons over the test digits
    chain.png          test digits in columns: x_T, the outputs T−1 … 0, the clean digit
    feed_back.png      as the course shows it: a test digit at rung 7, one pass, fed back 15 more times
    from_noise.png     the same chain started from uniform random pixels ("completely random" input)
    chain_psnr.png     PSNR against the clean digit along the chain, every variant
    sweep.md           with --sweep: one row per (T, condition)
    variants/T<T>-<condition>[-seed<s>]/   metrics.jsonl, model.safetensors, checkpoints/, figures

An epoch is one pair (x_t, x_{t−1}) per training image with t uniform (``interpolate``: 0 … T, the
x_0 → x_0 pair included; a walk: 1 … T), fresh noise each epoch; with ``--all-pairs`` it is every
one of the N·(T+1) stored pairs, as the course's notebook trains. ``--preset course`` is that
notebook exactly (``connlab.experiments.ladder_course``). The report's section: ``ladder_page``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab.checkpoint import atomic_write_text
from connlab.data import to_unit
from connlab.data.course import load_course_data
from connlab.data.global_batch import batch_rows, own_rows
from connlab.diffusion.ladder import (SCHEDULES, LadderSchedule, full_ladder, ladder_pair, materialize, materialize_bytes,
                                      pairs_from_rungs, run_chain, schedule_name)
from connlab.errors import UserError
from connlab.experiments.common import (DataSettings, TrainingSettings, add_training_command, from_flags,
                                        nonnegative_float, nonnegative_int, positive_int)
from connlab.experiments.config import flag
from connlab.experiments.ladder_chain import EVAL_SEED, eval_digits, measure_variant, shown_figures, validation_bce
from connlab.experiments.ladder_course import COURSE_PRESET, PRESETS, check_stored_size, course_summary
from connlab.experiments.ladder_page import section  # noqa: F401  the registry's section builder
from connlab.experiments.variants import load_images, train_variant
from connlab.measures import chain_psnr
from connlab.metrics import mean_std
from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
from connlab.runs import write_summary
from connlab.runtime.memory import check_fits
from connlab.train import EarlyStopping, pick_device

CONDITION_CHOICES = ("none", "learned", "sinusoidal", "all")
EVAL_IMAGES = 500   # default number of test digits the chain is measured on


def step_list(text: str) -> tuple[int, ...]:
    steps = tuple(dict.fromkeys(positive_int(part.strip()) for part in text.split(",") if part.strip()))
    if not steps:
        raise argparse.ArgumentTypeError(f"{text!r} holds no step counts")
    return steps


@dataclass(frozen=True)
class LadderExperiment(TrainingSettings, DataSettings):
    PRESET_FIELD = "preset"
    PRESETS = PRESETS

    preset: str = flag("lab", "lab: the lab's own setting; course: the course's diffusion notebook exactly "
                              "(fills only the flags not given)", choices=("lab", COURSE_PRESET))
    steps: int = flag(10, "T, rungs of the ladder (steps2use)", type=positive_int)
    dist: str = flag("norm", "noise distribution (dist2try)", choices=("norm", "uniform"))
    mag: float = flag(1.0, "noise magnitude (mag2use)", type=nonnegative_float)
    schedule: str = flag("interpolate", "interpolate: the course's (one end point x_T = clip(x_0 + round(mag z)), "
                                        "rungs on the line to it); walk (x_t = x_(t-1) + mag/T z), ve, vp: random "
                                        "walks", choices=SCHEDULES)
    condition: str = flag("none", "tell the network t: none (the course's notebook), learned, sinusoidal, "
                                  "all (compare)", choices=CONDITION_CHOICES)
    sweep: tuple[int, ...] = flag((), "train one model per T and tabulate quality and time, e.g. 1,5,10,20",
                                  type=step_list, metavar="T1,T2,...", show_default=False)
    materialize: bool = flag(False, "store the N x (T+1) ladder like the notebook (one fixed noise draw, "
                                    "(T+1)*N*3136 bytes)")
    all_pairs: bool = flag(False, "an epoch goes over all N x (T+1) stored pairs, x_0 -> x_0 included, as the "
                                  "course's notebook (stores the ladder)")
    eval_images: int = flag(EVAL_IMAGES, "test digits the chain and the validation BCE are measured on",
                            type=positive_int)
    course_data: bool = flag(False, "the course's data: MNIST's first 1,000 training digits (--limit N: the "
                                    "first N); validation on the first --eval-images digits of MNIST's test set "
                                    "when the full MNIST is found, else of the embedded digits no course model "
                                    "trains on")
    bottleneck: int = flag(0, "filters of the U-Net's 3x3 bottleneck at 7x7 (the course's: 16); 0: none",
                           type=nonnegative_int)
    init: str = flag("torch", "initialisation: torch (PyTorch's default) or keras (Glorot-uniform, zero bias: "
                              "the course's)", choices=("torch", "keras"))
    patience: int = flag(0, "early stopping: stop after N epochs without a lower validation BCE (Keras' "
                            "EarlyStopping, last weights kept); 0: off", type=nonnegative_int)
    seeds: int = flag(1, "repeat every model with K seeds (seed, seed+1, ...): the reproduction verdict "
                         "needs >= 2; 5 settle it", type=positive_int)
    epochs: int = 2

    def __post_init__(self):
        object.__setattr__(self, "schedule", schedule_name(self.schedule))  # "notebook" in old run folders

    @classmethod
    def check_saved(cls, name: str, value, where) -> None:
        """An old run folder's ``"schedule": "notebook"`` is today's ``walk``: check it under that name."""
        super().check_saved(name, schedule_name(value) if name == "schedule" and isinstance(value, str) else value,
                            where)

    @property
    def conditions(self) -> tuple[str, ...]:
        return ("none", "learned", "sinusoidal") if self.condition == "all" else (self.condition,)

    @property
    def step_counts(self) -> tuple[int, ...]:
        return self.sweep or (self.steps,)

    @property
    def shown_steps(self) -> int:
        """The T whose chain goes into the top-level figures and ``chain_psnr``."""
        return self.steps if self.steps in self.step_counts else self.step_counts[0]

    @property
    def stores(self) -> bool:
        """Whether the ladder is stored (one fixed draw) rather than drawn afresh."""
        return self.materialize or self.all_pairs

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def variant_name(self, T: int, condition: str, seed: int) -> str:
        """``T<T>-<condition>``, with ``-seed<s>`` when several seeds run (one seed keeps old runs' names)."""
        return f"T{T}-{condition}" + (f"-seed{seed}" if self.seeds > 1 else "")

    def model_config(self, T: int, condition: str):
        return StepConditionConfig(condition, T, bottleneck=self.bottleneck, init=self.init)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, LadderExperiment, "ladder", run_experiment, lambda summary, cfg: format_table(summary),
                         config=config_from_args)


def config_from_args(args: argparse.Namespace) -> LadderExperiment:
    cfg = LadderExperiment.from_args(args)
    for T in cfg.step_counts:  # reject bad values before a run folder exists
        from_flags(LadderSchedule, cfg.schedule, T, cfg.mag, cfg.dist)
    if cfg.stores:  # the largest training set the data set can give, since it is not loaded yet
        most = (cfg.limit or 1000) if cfg.course_data else min(cfg.limit or 60_000,
                                                                9_000 if cfg.dataset == "mnist-embedded" else 60_000)
        check_materialize(most, cfg)
    from_flags(cfg.model_config, cfg.steps, cfg.conditions[0])
    if cfg.course_data and cfg.dataset not in ("mnist", "mnist-embedded"):
        raise UserError(f"--course-data is MNIST's first training digits; --dataset {cfg.dataset} is another set")
    if cfg.course_data and cfg.limit is not None and cfg.limit > 5000:
        raise UserError(f"--limit {cfg.limit} with --course-data: the course's digits are MNIST's first ones, "
                        f"at most 5000 here (the course: 1000)")
    return cfg


def check_materialize(n: int, cfg: LadderExperiment) -> None:
    """``--materialize`` stores (T+1) x N images: refuse, as one line, a stack the device cannot hold."""
    T = max(cfg.step_counts)
    check_fits(materialize_bytes(n, T), pick_device(cfg.device), f"--materialize with T = {T} and {n:,} digits",
               "lower --steps or --limit, or drop --materialize (the ladder is then drawn per batch)")


def load_data(cfg: LadderExperiment):
    """(device, images, validation): the data set on the device, and which validation digits it holds."""
    if not cfg.course_data:
        device, data = load_images(cfg)
        return device, data, f"{data.name} test split, class-stratified"
    device = pick_device(cfg.device)
    course = load_course_data(cfg.data_dir, n_train=cfg.limit or 1000, n_validation=cfg.eval_images)
    return device, course.data.to(device), course.validation


def run_experiment(cfg: LadderExperiment, out: Path, resume: bool = False) -> dict:
    device, data, validation = load_data(cfg)
    train = data.train_images
    if cfg.stores:  # the N x (T+1) stack, refused in one line where it would not fit
        check_stored_size(len(train), max(cfg.step_counts), device)
    clean_test, starts = eval_digits(cfg, data, device)
    variants: dict[str, dict] = {}
    for seed in cfg.seed_list:
        for T in cfg.step_counts:
            train_ladders(cfg, out, resume, variants, seed, T, train, clean_test, starts)
    for e in variants.values():
        e["val_bce"], e["val_bce_std"] = mean_std([r["val_bce"] for r in e["seeds"]])
    first = shown_figures(cfg, out, variants)
    summary = build_summary(cfg, data, device, len(train), len(clean_test), validation, variants, first)
    if cfg.sweep:
        table = format_table(summary)
        summary["sweep"] = [{k: e[k] for k in ("steps", "condition", "params", "train_seconds", "final_psnr",
                                                "start_psnr", "final_bce")} for e in variants.values()]
        atomic_write_text(out / "sweep.md", table + "\n")
    write_summary(out, summary)
    return summary


def ladder_loss(cfg: LadderExperiment, train, schedule: LadderSchedule, T: int, stored):
    """The trainer's loss for one T: BCE of net(x_t, t) against x_(t−1), over drawn or stored rungs."""

    def loss_fn(model, batch, generator):
        (i,) = batch
        if cfg.all_pairs:  # row b·(T+1) + t: rung t of digit b, as the notebook stacks them
            t, d = i % (T + 1), i // (T + 1)
            x_t, x_prev = stored[t, d], stored[(t - 1).clamp(min=0), d]
        else:
            # under torchrun: every rank draws the global batch's t and walks its highest rung
            t_all = torch.randint(schedule.first_pair, T + 1, (batch_rows(len(i)),), device=i.device,
                                  generator=generator)
            t = own_rows(t_all)
            if stored is None:
                x_t, x_prev = ladder_pair(to_unit(train[i]), t, schedule, generator, top=int(t_all.max()))
            else:
                x_t, x_prev = stored[t, i], stored[(t - 1).clamp(min=0), i]
        return F.binary_cross_entropy_with_logits(model(x_t, t).float(), x_prev)

    return loss_fn


def train_ladders(cfg: LadderExperiment, out: Path, resume: bool, variants: dict, seed: int, T: int, train,
                  clean_test, starts) -> None:
    """Every ``--condition`` of one seed and one T: train, measure, draw; into ``variants``."""
    device = clean_test.device
    schedule = LadderSchedule(cfg.schedule, T, cfg.mag, cfg.dist)
    # one seed's validation ladder: the same for its variants (paired), drawn anew for the next seed
    test_ladder = full_ladder(clean_test, schedule, torch.Generator(device=device).manual_seed(EVAL_SEED + seed))
    val = pairs_from_rungs(test_ladder)
    stored = None
    if cfg.stores:
        stored = materialize(to_unit(train), schedule, torch.Generator(device=device).manual_seed(seed))
    rows = len(train) * (T + 1) if cfg.all_pairs else len(train)
    loss_fn = ladder_loss(cfg, train, schedule, T, stored)
    for condition in cfg.conditions:
        name = cfg.variant_name(T, condition, seed)
        # The under-trained denoiser, shown next to the working one: the chain of the model after its
        # first epoch, measured on the same test digits at that epoch's end (no extra training).
        evaluated: list = []   # per-digit chain PSNRs, one per epoch evaluated in this process

        def evaluate(model, evaluated=evaluated):
            per_digit = chain_psnr(torch.stack(run_chain(model, test_ladder[T], T)), clean_test)
            evaluated.append(per_digit)
            line = {"chain_final_psnr": per_digit[-1].mean().item()}
            if cfg.patience:  # what early stopping watches, every epoch
                line["val_bce"] = validation_bce(model, *val, T)
            return line

        model_cfg = cfg.model_config(T, condition)
        stop = EarlyStopping("val_bce", cfg.patience) if cfg.patience else None
        model, result = train_variant(cfg, out, name, lambda: StepConditionedUNet(model_cfg), loss_fn,
                                      (torch.arange(rows, device=device),), device,
                                      model_config=model_cfg.signature(), seed=seed, evaluate=evaluate,
                                      resume=resume, early_stopping=stop, label=name)
        measure_variant(cfg, out, variants, model, result, evaluated, name, seed, T, condition, test_ladder, val,
                        clean_test, starts)


def build_summary(cfg: LadderExperiment, data, device, n: int, eval_images: int, validation: str, variants: dict,
                  first: str) -> dict:
    """summary.json: the run's setting, the shown variant's numbers at the top level, every variant below."""
    T = cfg.shown_steps
    schedule = LadderSchedule(cfg.schedule, T, cfg.mag, cfg.dist)
    summary = {
        "experiment": "ladder", "dataset": data.name, "data_source": data.source, "device": str(device),
        "train_images": n, "eval_images": eval_images, "schedule": cfg.schedule, "dist": cfg.dist,
        "mag": cfg.mag, "steps": T, "epochs": cfg.epochs, "materialized": cfg.stores, "all_pairs": cfg.all_pairs,
        "train_pairs_per_epoch": n * (T + 1) if cfg.all_pairs else n, "seeds": cfg.seeds, "preset": cfg.preset,
        "process": schedule.describe(),
        "noise_std_per_step": None if schedule.interpolates else schedule.noise_std(),
        "materialize_cost": {"bytes": materialize_bytes(n, T), "shape": [T + 1, n, 1, 28, 28],
                             "full_mnist_bytes": materialize_bytes(60_000, T)},
        "validation": {"digits": eval_images, "pairs": eval_images * (T + 1), "set": validation},
        "shown_variant": first,
        "val_bce_per_seed": [r["val_bce"] for r in variants[first]["seeds"]],
        "chain_psnr": variants[first]["chain_psnr"], "chain_bce": variants[first]["chain_bce"],
        "train_seconds": variants[first]["train_seconds"],
        "psnr_rises_in_steps": variants[first]["psnr_rises_in_steps"],
        "evidence": variants[first]["evidence"],
        "variants": variants,
    }
    summary.update(course_summary(cfg, summary))
    return summary


def format_table(summary: dict) -> str:
    lines = ["| T | condition | params | PSNR x_T (dB) | PSNR x̂_0 (dB) | BCE x̂_0 | PSNR rises | train s | img/s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in summary["variants"].values():
        lines.append(f"| {e['steps']} | {e['condition']} | {e['params']:,} | {e['start_psnr']:.2f} | "
                     f"{e['final_psnr']:.2f} | {e['final_bce']:.4f} | {e['psnr_rises_in_steps']} | "
                     f"{e['train_seconds']:.1f} | {e['train_images_per_second']:.0f} |")
    return "\n".join(lines)
