"""``connlab diffusion train | sample | eval`` — DDPM and DDIM on MNIST, in pixel or latent space.

    connlab diffusion train [--preset default|demo|pixel] [--space pixel|latent] ...
    connlab diffusion sample --run DIR --sampler ddpm|ddim --steps K --num N [--eta E] [--guidance W] [--save-npz P]
                             [--ladder-run LADDER_DIR [--ladder-variant NAME]]
    connlab diffusion eval --run DIR [--num N]

This file is the command line and the training recipe.  The pieces compose as in DESIGN.md:
the U-Net (``models.diffusion_unet``) predicts ε, x_0 or v; the process
(``diffusion.schedule``) noises and defines the loss; DDPM and DDIM (``diffusion.samplers``)
are two step rules over the same trained network; ``train.fit`` is the training loop (EMA
included); ``sampling.generate`` loads a run and samples it; ``sampling.evaluate`` scores
samples in an MNIST classifier's features (``quality``); ``diffusion.sidebyside`` puts the
Exercise-2 ladder beside DDPM from the same noise (stored by ``sampling.sidebyside``, rendered
by ``connlab report``).  With ``--space latent`` (Rombach et al. 2022) a small autoencoder
(``models.latent_ae``) is trained first by the same ``fit``, the training digits are
encoded once to standardised 4×7×7 latents, the U-Net learns to denoise those, and the
decoder maps sampled latents back to pixels.

Run folder (train):
    config.json, summary.json         the experiment config; final numbers (quality, time) and
                                      structure_first: the label-free DDIM chain's "structure first" rule
    model.safetensors, ema.safetensors, metrics.jsonl, checkpoints/   the U-Net (sampling uses EMA)
    autoencoder/                      latent space only: its fit run and autoencoder.safetensors
    classifier/                       the quality classifier, when trained on the fly
    samples.png, trajectory.png       a sample grid; x_T → x_0 for a few samples
    eval.md, eval.json                written by ``eval``: distance and time vs sampler and steps, and
                                      fewer_steps: DDIM-50 vs DDPM-T Fréchet distance, bootstrap interval
    samples-<sampler><steps>.png      written by ``sample``
    sidebyside.json, sidebyside.png   written by ``sample --ladder-run``: the ladder's chain, DDPM's
                                      and the chosen sampler's, from the same pure noise (the PNG is
                                      what the report shows)
    sidebyside.html                   written by ``connlab report`` from sidebyside.json: the chains
                                      step by step, one self-contained page

CPU default (2 CPU cores, embedded data): latent diffusion with v-prediction on the cosine
schedule (Salimans & Ho 2022), lr 2e-3 with warm-up, cosine decay and EMA with warm-up, because a
latent U-Net step costs a small fraction of a pixel U-Net's there; ``--preset default`` is
class-conditional and sampled with classifier-free guidance w = 1 (Ho & Salimans 2022) unless
told otherwise; ``--preset demo`` is its short cut (w = 2).  The measurements behind these
choices, and each preset's quality and time: docs/diffusion-cpu-quality.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from connlab import plots
from connlab.checkpoint import (atomic_write, atomic_write_json, atomic_write_text, check_output, load_weights,
                                model_signature, save_weights)
from connlab.data import load_dataset, to_uint8, to_unit, unit_to_signed
from connlab.data.global_batch import batch_rand, batch_randint, batch_randn
from connlab.diffusion import EMA, NoiseSchedule, diffusion_loss
from connlab.errors import UserError
from connlab.experiments.classifier import find_or_train_classifier as find_classifier
from connlab.experiments.common import (DataSettings, TrainingSettings, add_training_command, from_flags, int_list,
                                        nonnegative_float, nonnegative_int, positive_int, seed_int, speed_flag)
from connlab.experiments.config import Config, flag
from connlab.experiments.ladder_chain import load_ladder
from connlab.runtime.settings import RunSettings
from connlab.runtime.speed import Speed
from connlab.experiments.section import (CONTRADICTED, NOT_MEASURED, NOT_SUPPORTED, NO_INTERVALS, PARTLY, SUPPORTED,
                                         Run, Section, Table, combine, fmt, get, num, stored, with_figures)
from connlab.experiments.sentence import OLD_FOLDER, Part, sentence, tail
from connlab.metrics import image_metrics
from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig
from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
from connlab.quality import load_classifier
from connlab.runs import resumable, write_summary
from connlab.runtime.memory import check_fits
from connlab.sampling.evaluate import (DETAIL_CHANGE, EVAL_SEED, FEWER_STEPS_DDIM, FEWER_STEPS_RULE, STRUCTURE_BY,
                                       STRUCTURE_RULE, evaluate, fewer_steps_claim, floor, format_eval, score,
                                       structure_claim)
from connlab.sampling.generate import Generator, plain_config
from connlab.sampling.sidebyside import FIGURE, store_side_by_side
from connlab.train import fit, pick_device, seed_everything

int_tuple = int_list(1, "U-Net levels (channel multipliers)")


TRAIN = "model and recipe"


@dataclass(frozen=True)
class DiffusionExperiment(TrainingSettings, DataSettings):
    # Presets fill every flag not given on the command line.  "default": the CPU default (see the
    # module docstring); "demo": its short cut for the lab demo; "pixel": the reference,
    # a plain pixel-space ε / linear DDPM (it trains no autoencoder: its ae_epochs is unused).
    PRESETS = {
        "default": dict(space="latent", schedule="cosine", prediction="v", timesteps=1000, base_channels=32,
                        channel_mults=(1, 2), attention=True, epochs=40, batch_size=128, lr=2e-3, ema_decay=0.999,
                        ae_epochs=16, class_cond=True, guidance=1.0),
        "demo": dict(space="latent", schedule="cosine", prediction="v", timesteps=1000, base_channels=32,
                     channel_mults=(1, 2), attention=True, epochs=4, batch_size=128, lr=2e-3, ema_decay=0.995,
                     ae_epochs=3, class_cond=True, guidance=2.0),
        "pixel": dict(space="pixel", schedule="linear", prediction="eps", timesteps=1000, base_channels=16,
                      channel_mults=(1, 2, 2), attention=True, epochs=8, batch_size=128, lr=1e-3, ema_decay=0.999,
                      ae_epochs=1, class_cond=False, guidance=None),
    }
    PRESET_FIELD = "preset"

    preset: str = flag("default", "default: the CPU default (~14 min on 2 cores); demo: a short cut (~1.5 min); "
                                  "pixel: plain pixel ε-DDPM", choices=("default", "demo", "pixel"), group=TRAIN)
    space: str = flag("latent", "diffuse pixels or AE latents", choices=("pixel", "latent"), group=TRAIN)
    schedule: str = flag("cosine", "β schedule", choices=("linear", "cosine"), group=TRAIN)
    prediction: str = flag("v", "what the network predicts", choices=("eps", "x0", "v"), group=TRAIN)
    timesteps: int = flag(1000, "T, the number of diffusion steps", type=positive_int, group=TRAIN)
    base_channels: int = flag(32, "U-Net width (multiple of 8)", type=positive_int, group=TRAIN)
    channel_mults: tuple[int, ...] = flag((1, 2), "U-Net levels, e.g. 1,2,2", type=int_tuple, group=TRAIN)
    num_res_blocks: int = flag(1, "residual blocks per level", type=positive_int, group=TRAIN)
    attention: bool = flag(True, "no self-attention at the lowest resolution", negative="--no-attention",
                           group=TRAIN)
    dropout: float = flag(0.0, "dropout in residual blocks", type=nonnegative_float, group=TRAIN)
    ema_decay: float = flag(0.999, "EMA decay (with warm-up)", type=nonnegative_float, group=TRAIN)
    class_cond: bool = flag(False, "condition on the label, for classifier-free guidance (the default preset does)",
                            optional_bool=True, group=TRAIN)  # False for runs saved before the presets set it
    label_dropout: float = flag(0.1, "p of replacing the label by ∅ in training (classifier-free guidance)",
                                type=nonnegative_float, group=TRAIN)
    guidance: float | None = flag(None, "the run's default guidance weight w for sample, eval and the final score "
                                        "(class-cond only)", type=nonnegative_float, group=TRAIN)
    ae_epochs: int = flag(16, "latent space: autoencoder epochs", type=positive_int, group=TRAIN)
    latent_channels: int = 4
    threads: int = flag(0, "intra-op CPU threads (0: all cores; 1 is faster on a busy machine)",
                        type=nonnegative_int, group=TRAIN)
    classifier: str | None = flag(None, "a `connlab classifier` run for the quality metric (default: train one on "
                                        "the fly)", type=str, group=TRAIN)
    eval_num: int = flag(500, "samples scored after training", type=positive_int, group=TRAIN)
    eval_steps: int = flag(50, "DDIM steps for that score", type=positive_int, group=TRAIN)
    epochs: int = 40
    lr: float = 2e-3

    def unet_config(self):
        ch = 1 if self.space == "pixel" else self.latent_channels
        return DiffusionUNetConfig(in_channels=ch, out_channels=ch, base_channels=self.base_channels,
                                   channel_mults=tuple(self.channel_mults), num_res_blocks=self.num_res_blocks,
                                   attention=self.attention, dropout=self.dropout,
                                   num_heads=4, norm_groups=8, num_classes=10 if self.class_cond else None)

    def noise_schedule(self):
        return getattr(NoiseSchedule, self.schedule)(self.timesteps)


# --- command line -------------------------------------------------------------------------------

SPEED = "speed (defaults are the fast path; each flag turns one part off)"


@dataclass(frozen=True)
class SamplingCommand(Config):
    """What ``diffusion sample`` and ``eval`` share: the run, the guidance, the seed, the device, the speed
    switches (``Speed``'s, as the trainer's; malloc_cache is a training switch). Not saved in a run."""

    run_dir: Path = flag(help="a `connlab diffusion train` run folder", type=Path, option="--run", metavar="RUN")
    guidance: float | None = flag(None, "classifier-free guidance weight w (default: the run's own; "
                                        "class-conditional runs only)", type=nonnegative_float)
    seed: int = flag(0, "random seed of the noise", type=seed_int)
    device: str = flag(RunSettings.device, "auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps", show_default=False)
    precision: str = speed_flag("precision", SPEED)
    channels_last: str = speed_flag("channels_last", SPEED)
    compile: str = speed_flag("compile", SPEED)
    cuda_graph: str = speed_flag("cuda_graph", SPEED)


@dataclass(frozen=True)
class SampleCommand(SamplingCommand):
    """``connlab diffusion sample``'s flags."""

    sampler: str = flag("ddim", "the step rule", choices=("ddpm", "ddim"))
    steps: int | None = flag(None, "DDIM steps, 1..T (default 50); DDPM uses T", type=positive_int)
    num: int = flag(64, "number of samples", type=positive_int)
    eta: float = flag(0.0, "DDIM η (0: deterministic, 1: DDPM-like)", type=nonnegative_float)
    save_npz: Path | None = flag(None, "write the samples as uint8 'images' (N, 28, 28)", type=Path)
    ladder_run: Path | None = flag(None, "a `connlab ladder` run: also store its chain and DDPM's from the same "
                                         "noise (sidebyside.json; `connlab report` renders the page)", type=Path)
    ladder_variant: str | None = flag(None, "which of the ladder run's variants, e.g. T10-none (default: the one "
                                            "its figures show)", type=str)


@dataclass(frozen=True)
class EvalCommand(SamplingCommand):
    """``connlab diffusion eval``'s flags."""

    num: int = flag(500, "samples per sampler setting", type=positive_int)
    classifier: Path | None = flag(None, "a `connlab classifier` run (default: the run's)", type=Path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p), required=True)

    t = sub.add_parser("train", help="train a DDPM (pixel or latent space)")
    add_training_command(t, DiffusionExperiment, "diffusion", train, describe, config=checked_config)

    s = sub.add_parser("sample", help="sample digits from a trained run")
    SampleCommand.add_flags(s)
    s.set_defaults(run=lambda args: run_sample(SampleCommand.from_args(args)))

    e = sub.add_parser("eval", help="distance and time vs sampler and steps")
    EvalCommand.add_flags(e)
    e.set_defaults(run=lambda args: run_eval(EvalCommand.from_args(args)))


def config_from_args(args: argparse.Namespace) -> DiffusionExperiment:
    """The preset, then the given flags; a preset's guidance w applies to its class-conditional model only."""
    cfg = DiffusionExperiment.from_args(args)
    if getattr(args, "guidance", None) is not None and not cfg.class_cond:
        raise UserError("--guidance needs a class-conditional run (add --class-cond)")
    return replace(cfg, guidance=cfg.guidance if cfg.class_cond else None)


def _set_threads(threads: int, device) -> None:
    # 0 keeps torch's default (all cores): faster on idle cores; on cores busy with other work one
    # thread can be much faster (--threads 1), since intra-op threads then wait on each other
    # (docs/diffusion-cpu-quality.md).
    if threads > 0:
        torch.set_num_threads(threads)


# --- train -------------------------------------------------------------------------------------

def checked_config(args: argparse.Namespace) -> DiffusionExperiment:
    """``config_from_args``, with the U-Net's and the recipe's values checked before any work."""
    cfg = config_from_args(args)
    if cfg.ema_decay >= 1:
        raise UserError(f"--ema-decay must be < 1, got {cfg.ema_decay}")
    if not cfg.label_dropout < 1:
        raise UserError(f"--label-dropout must be < 1, got {cfg.label_dropout}")
    from_flags(cfg.unet_config)
    if cfg.classifier is not None:  # before the autoencoder and the U-Net train, not after

        try:
            load_classifier(Path(cfg.classifier), "cpu")
        except UserError as err:
            raise UserError(f"--classifier: {err}") from None
    return cfg


def describe(summary: dict, cfg: DiffusionExperiment) -> str:
    q = summary["quality"]
    w = f", guidance w = {cfg.guidance:g}" if cfg.guidance is not None else ""
    return (f"{cfg.space} DDPM, {summary['unet_params']:,} U-Net parameters, trained {summary['train_seconds']:.0f} s; "
            f"DDIM-{q['steps']}{w} ({q['num_samples']} samples): distance {q['frechet_distance']:.2f} "
            f"(floor {summary['frechet_floor']:.2f}), confidence {q['mean_confidence']:.3f}, "
            f"classes covered {q['classes_covered']}/10")


def train(cfg: DiffusionExperiment, out: Path, resume: bool = False) -> dict:
    device = pick_device(cfg.device)
    _set_threads(cfg.threads, device)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)
    seed_everything(cfg.seed)
    summary: dict = {"experiment": "diffusion", "dataset": data.name, "data_source": data.source,
                     "device": str(device), "threads": torch.get_num_threads(),
                     "train_images": len(data.train_images), "config": asdict(cfg)}
    ae_seconds = 0.0
    if cfg.space == "latent":
        x0_train, summary["autoencoder"] = latent_training_set(cfg, out, data, resume)
        ae_seconds = summary["autoencoder"]["train_seconds"]
    else:
        x0_train = data.train_images  # uint8; mapped to [-1, 1] per batch
    model, result = train_unet(cfg, out, resume, (x0_train, data.train_labels))
    summary.update({"unet_params": sum(p.numel() for p in model.parameters()), "steps": result.steps,
                    "unet_train_seconds": result.train_seconds, "autoencoder_train_seconds": ae_seconds,
                    "train_seconds": round(result.train_seconds + ae_seconds, 3),
                    "seconds_per_step": round(result.train_seconds / max(result.steps, 1), 4),
                    "final_train_loss": result.final_train_loss, "history": result.history})
    summary.update(score_and_draw(cfg, out, data, device))
    write_summary(out, summary)
    return summary


def latent_training_set(cfg: DiffusionExperiment, out: Path, data, resume: bool):
    """Train the latent autoencoder and encode the training digits once: ((N, C, 7, 7) latents, its summary)."""
    ae, ae_summary = train_autoencoder(cfg, out / "autoencoder", data, resume)
    with torch.no_grad():
        x0_train = torch.cat([ae.encode(to_unit(x)) for x in data.train_images.split(1000)])  # (N, C, 7, 7)
    return x0_train, ae_summary


def denoising_loss(cfg: DiffusionExperiment, schedule, null: int | None):
    """The trainer's loss: noise x_0 at a random t and score the network's prediction (``diffusion_loss``);
    ``null``: the class index that stands for ∅ (class-conditional runs), else None."""

    def loss_fn(model, batch, generator):
        x0, y = batch
        x0 = unit_to_signed(to_unit(x0)) if cfg.space == "pixel" else x0
        # batch_*: under torchrun each rank draws the global batch's noise and keeps its rows
        t = batch_randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)
        eps = batch_randn(x0.shape, generator=generator, device=x0.device)
        if null is None:
            y = None
        else:  # label dropout: the same network learns ε(x, t, ∅) for classifier-free guidance
            drop = batch_rand(y.shape, generator=generator, device=y.device) < cfg.label_dropout
            y = torch.where(drop, torch.full_like(y, null), y)
        out_ = model(schedule.q_sample(x0, t, eps), t, y)
        return diffusion_loss(out_.float(), x0, eps, t, schedule, cfg.prediction)

    return loss_fn


def train_unet(cfg: DiffusionExperiment, out: Path, resume: bool, data: tuple):
    """Build the U-Net and its EMA and train them in ``out`` on (x_0, labels); returns (model, fit's result)."""
    device = data[0].device
    schedule = cfg.noise_schedule().to(device)
    unet_cfg = cfg.unet_config()
    model = DiffusionUNet(unet_cfg).to(device)
    ema = EMA(model, cfg.ema_decay)
    train_cfg = cfg.train_config(optimizer="adamw", lr_schedule="cosine", warmup_steps=100, grad_clip=1.0)
    result = fit(model, denoising_loss(cfg, schedule, unet_cfg.num_classes), data, train_cfg, out,
                 model_config=plain_config(unet_cfg), ema=ema, resume=resumable(out, resume),
                 label=f"{cfg.space} DDPM")
    return model, result


def score_and_draw(cfg: DiffusionExperiment, out: Path, data, device) -> dict:
    """Score the EMA network's DDIM samples (quality, its floor, the structure-first claim) and draw the figures;
    the summary's part of it."""
    gen = Generator.from_run(out, device, Speed.of(cfg), DiffusionExperiment)  # the trainer's speed switches
    part: dict = {}
    classifier, part["classifier"] = find_classifier(cfg.classifier, out, data, device)
    steps = min(cfg.eval_steps, cfg.timesteps)
    t0 = time.perf_counter()
    images = gen.sample("ddim", steps, cfg.eval_num, seed=EVAL_SEED)
    seconds = time.perf_counter() - t0
    part["quality"] = score(images, data, classifier, sampler="ddim", steps=steps, seconds=seconds,
                            guidance=cfg.guidance)
    part["frechet_floor"] = floor(data, classifier, cfg.eval_num)
    part["floor_note"] = f"real train vs real test at the same N = {cfg.eval_num}"
    t0 = time.process_time()
    part["structure_first"] = structure_claim(gen, classifier)
    part["structure_first"]["cpu_seconds"] = round(time.process_time() - t0, 2)
    gen.figures(out, images)
    return part


def train_autoencoder(cfg: DiffusionExperiment, out: Path, data, resume: bool):
    """Train the latent autoencoder with ``fit`` and standardise its latents; (model, summary)."""
    ae_cfg = LatentAEConfig(latent_channels=cfg.latent_channels)
    ae = LatentAutoencoder(ae_cfg).to(data.train_images.device)
    signature = model_signature(ae, asdict(ae_cfg))
    final = out / "autoencoder.safetensors"
    if final.is_file():  # finished before an interruption of the U-Net's training
        load_weights(ae, final, signature)
        return ae.eval(), json.loads((out / "summary.json").read_text())
    train_cfg = cfg.train_config(epochs=cfg.ae_epochs, lr=2e-3, optimizer="adamw", lr_schedule="cosine",
                                 warmup_steps=50)
    result = fit(ae, lambda m, batch, g: m.loss(to_unit(batch[0]), g), (data.train_images,), train_cfg, out,
                 model_config=asdict(ae_cfg), resume=resumable(out, resume),
                 label="latent autoencoder")
    ae.eval()
    ae.fit_latent_stats(to_unit(data.train_images))
    with torch.no_grad():
        test = to_unit(data.test_images)
        recon = torch.cat([ae.decode(ae.encode(x)) for x in test.split(1000)])
    summary = {"config": asdict(ae_cfg), "params": sum(p.numel() for p in ae.parameters()),
               "bottleneck": "plain (standardised latents, noisy-latent decoder training), not KL",
               "latent_shape": [cfg.latent_channels, 7, 7], "train_seconds": result.train_seconds,
               "test_reconstruction": image_metrics(recon, test)}
    atomic_write_json(out / "summary.json", summary)
    save_weights(ae, final, {"signature": signature})
    return ae, summary


# --- sample and eval -----------------------------------------------------------------------------

def run_sample(cmd: SampleCommand) -> int:
    device = pick_device(cmd.device)
    gen = Generator.from_run(cmd.run_dir, device, Speed.of(cmd), DiffusionExperiment)
    _set_threads(gen.cfg.threads, device)
    steps = gen.check(cmd.sampler, cmd.steps, cmd.guidance)
    check_sample_size(cmd.num, device)
    if cmd.save_npz is not None:  # written exactly there (numpy adds no .npz to an open file), checked first
        check_output(cmd.save_npz, "--save-npz")
    ladder = None
    if cmd.ladder_run is not None:  # checked before any sampling

        ladder = load_ladder(cmd.ladder_run, cmd.ladder_variant, device)
    t0 = time.perf_counter()
    images = gen.sample(cmd.sampler, steps, cmd.num, cmd.eta, cmd.guidance, seed=cmd.seed)
    seconds = time.perf_counter() - t0
    if cmd.save_npz is not None:  # (N, 28, 28) uint8
        atomic_write(cmd.save_npz, lambda f: np.savez_compressed(f, images=to_uint8(images[:, 0]).cpu().numpy()))
    w = gen.guidance(cmd.guidance)
    tag = f"{cmd.sampler}{steps}" + (f"-eta{cmd.eta:g}" if cmd.eta else "") + (f"-w{w:g}" if w is not None else "")
    rows = [("", images[i:i + 10]) for i in range(0, min(len(images), 60), 10)]
    plots.image_rows(rows, Path(cmd.run_dir) / f"samples-{tag}.png",
                     f"{cmd.sampler.upper()}-{steps}" + (f", guidance w = {w:g}" if w is not None else ""))
    print(f"{cmd.num} samples, {cmd.sampler.upper()}-{steps}" + (f", guidance w = {w:g}" if w is not None else "")
          + f", {seconds:.1f} s "
          f"({cmd.num / seconds:.1f} images/s); grid: {Path(cmd.run_dir) / f'samples-{tag}.png'}"
          + (f"; npz: {cmd.save_npz}" if cmd.save_npz else ""))
    if ladder is not None:
        t0 = time.perf_counter()
        data = store_side_by_side(gen, ladder, Path(cmd.run_dir), sampler=cmd.sampler, steps=steps, eta=cmd.eta,
                                  guidance=cmd.guidance, seed=cmd.seed)
        print(f"side-by-side chains (ladder {ladder.name} and DDPM from the same noise, "
              f"{time.perf_counter() - t0:.1f} s): {data}, figure {data.parent / FIGURE}; "
              f"the page: connlab report {cmd.run_dir} (writes {data.parent / 'sidebyside.html'})")
    return 0


def check_sample_size(num: int, device) -> None:
    """``--num`` samples must fit in memory: they are kept (float32 images, the chunks and their join)."""
    check_fits(num * 28 * 28 * 4 * 3, device, f"--num {num} samples", "ask for fewer")


def run_eval(cmd: EvalCommand) -> int:
    device = pick_device(cmd.device)
    gen = Generator.from_run(cmd.run_dir, device, Speed.of(cmd), DiffusionExperiment)
    _set_threads(gen.cfg.threads, device)
    cfg = gen.cfg
    check_sample_size(cmd.num, device)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)
    classifier, info = find_classifier(cmd.classifier or cfg.classifier, cmd.run_dir, data, device)
    gen.check("ddim", None, cmd.guidance)
    kept: dict = {}
    rows = evaluate(gen, data, classifier, cmd.num, cmd.seed, cmd.guidance,
                    progress=lambda line: print(line, file=sys.stderr), keep=kept)
    result = {"run": str(cmd.run_dir), "space": cfg.space, "num": cmd.num, "guidance": gen.guidance(cmd.guidance),
              "classifier": info,
              "frechet_floor": floor(data, classifier, cmd.num), "rows": rows}
    ddim, ddpm = kept.get(("ddim", FEWER_STEPS_DDIM)), kept.get(("ddpm", cfg.timesteps))
    if ddim is not None and ddpm is not None and cmd.num >= 2:  # T < 50 has no DDIM-50 row
        result["fewer_steps"] = fewer_steps_claim(to_unit(data.test_images), ddpm, ddim, classifier, cmd.seed)
    table = format_eval(result)
    atomic_write_json(Path(cmd.run_dir) / "eval.json", result)
    atomic_write_text(Path(cmd.run_dir) / "eval.md", table + "\n")
    print(table)
    return 0


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------


def structure_verdict(claim) -> tuple[str, str, str]:
    """(verdict, text, effect cell) of "early steps lay down structure" from summary.json's numbers."""
    step, steps, frac = num(claim, "structure_step"), num(claim, "steps"), num(claim, "structure_fraction")
    change, low, high = (num(claim, "relative_l2_change_after"), num(claim, "relative_l2_interval", 0),
                         num(claim, "relative_l2_interval", 1))
    verdict = get(claim, "verdict")
    if None in (step, steps, frac, change) or verdict not in (SUPPORTED, NOT_SUPPORTED):
        return NOT_MEASURED, NO_INTERVALS, "structure first: " + NO_INTERVALS
    ci = f" [95 % CI {low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    n = get(claim, "num", default="?")
    text = (f"on the label-free chain the label of x̂₀ settles (≥ {num(claim, 'agree') or 0.9:.0%} agree with the "
            f"final one) by step {step + 1:.0f} of {steps:.0f} ({frac:.0%} of the chain); after it x̂₀ still changes "
            f"by a relative L2 of {change:.3f}{ci} over {n} samples")
    return verdict, text, f"label settles at {frac:.0%} of the chain; x̂₀ change after it {change:.3f}{ci}, n = {n}"


def fewer_steps_verdict(claim) -> tuple[str, str, str]:
    """(verdict, text, effect cell) of "DDIM samples with far fewer steps" from eval.json's numbers."""
    ev, margin, ddpm = stored(claim, "evidence"), num(claim, "margin"), num(claim, "ddpm_frechet")
    if ev is None or margin is None or ddpm is None or get(claim, "verdict") not in (SUPPORTED, NOT_SUPPORTED,
                                                                                     CONTRADICTED):
        return NOT_MEASURED, f"{NO_INTERVALS} (connlab diffusion eval)", "DDIM vs DDPM: " + NO_INTERVALS
    k = get(claim, "ddim_steps", default="?")
    line = ev.text(f"DDIM-{k} − DDPM Fréchet distance", ".2f")
    text = (f"{line}; DDPM's distance {ddpm:.2f}, margin fixed before the run +{margin:.2f} "
            f"({num(claim, 'margin_share') or 0:.0%} of it)")
    needed = samples_to_settle(claim)
    if needed is not None:
        text += (f" — the interval is wider than the margin at N = {ev.n}; about N = {needed} "
                 "samples per sampler would settle it if the effect stays this size (width ∝ 1/√N)")
    return get(claim, "verdict"), text, f"{line} (margin +{margin:.2f})"


def samples_to_settle(claim) -> int | None:
    """The N per sampler at which "DDIM needs far fewer steps", not supported at this N, would be settled if
    its effect stays this size: the bootstrap interval narrows about as 1/√N, so the N at which its upper end
    falls below the margin (rounded up to 100). None when it is settled, or when no N would do it."""
    ev, margin = stored(claim, "evidence"), num(claim, "margin")
    if ev is None or margin is None or get(claim, "verdict") != NOT_SUPPORTED or math.isnan(ev.high) \
            or margin <= max(ev.effect, 0):
        return None
    half = (ev.high - ev.low) / 2
    return math.ceil(ev.n * (half / (margin - max(ev.effect, 0))) ** 2 / 100) * 100


def claim_parts(s: dict, claim_eval, quality: str) -> list:
    """The three parts of the claim in plain words (``connlab.experiments.sentence``), from the same numbers."""
    q = get(s, "quality", default={}) or {}
    conf, classes = num(q, "mean_confidence"), num(q, "classes_covered")
    parts = [Part(NOT_MEASURED, "whether the samples are digits", OLD_FOLDER) if conf is None or classes is None
             else Part(quality, f"from pure noise, DDIM-{get(q, 'steps', default='?')} draws digits of {classes:.0f} "
                                f"of the 10 classes, labelled with mean confidence {conf:.2f} by the classifier",
                       "" if quality == SUPPORTED else "the rule asks for all 10 classes at confidence ≥ 0.8: "
                                                       "train longer (--epochs) to settle it")]
    claim = get(s, "structure_first")
    step, steps, frac = num(claim, "structure_step"), num(claim, "steps"), num(claim, "structure_fraction")
    change, low, high = (num(claim, "relative_l2_change_after"), num(claim, "relative_l2_interval", 0),
                         num(claim, "relative_l2_interval", 1))
    if None in (step, steps, frac, change) or get(claim, "verdict") not in (SUPPORTED, NOT_SUPPORTED):
        parts.append(Part(NOT_MEASURED, "whether early steps lay down the structure", OLD_FOLDER))
    else:
        ci = f", 95 % interval {low:.3f} to {high:.3f}" if low is not None and high is not None else ""
        why = "" if get(claim, "verdict") == SUPPORTED else (
            f"the rule asks for the label to settle within the first {100 * STRUCTURE_BY:.0f} % of the chain"
            if frac > STRUCTURE_BY else f"the rule asks for a change after it clearly above {DETAIL_CHANGE:g}")
        parts.append(Part(get(claim, "verdict"),
                          f"the digit's label is settled {100 * frac:.0f} % of the way through the chain (step {step + 1:.0f} "
                          f"of {steps:.0f}) while the details keep changing after it (relative L2 {change:.3f}{ci}, "
                          f"{get(claim, 'num', default='?')} samples)", why))
    ev, margin = stored(claim_eval, "evidence"), num(claim_eval, "margin")
    if ev is None or margin is None or num(claim_eval, "ddpm_frechet") is None:
        parts.append(Part(NOT_MEASURED, "whether DDIM needs far fewer steps",
                          "measure it with connlab diffusion eval"))
    else:
        k, verdict = get(claim_eval, "ddim_steps", default="?"), get(claim_eval, "verdict")
        word = "higher" if ev.effect >= 0 else "lower"
        lo, hi = (ev.low, ev.high) if ev.effect >= 0 else (-ev.high, -ev.low)   # turned to match the word
        needed = samples_to_settle(claim_eval)
        settle = (f"its interval (up to {ev.high:+.2f}) still reaches past the margin fixed before the run "
                  f"(+{margin:.2f}, {100 * (num(claim_eval, 'margin_share') or 0):.0f} % of DDPM's distance)"
                  + (f"; about {needed} samples per sampler would settle it (connlab diffusion eval --num "
                     f"{needed})" if needed is not None else "")) if verdict == NOT_SUPPORTED else ""
        parts.append(Part(verdict, f"DDIM with {k} steps scores a Fréchet distance {abs(ev.effect):.2f} {word} than "
                                   f"DDPM with all its steps (95 % interval {lo:.2f} to {hi:.2f}, {ev.n} samples "
                                   "each)".replace("-", "−"), settle))
    return parts


def section(run: Run) -> Section:

    s = run.summary
    q = get(s, "quality", default={}) or {}
    dist, floor = num(q, "frechet_distance"), num(s, "frechet_floor")
    conf, confident, classes = num(q, "mean_confidence"), num(q, "confident_fraction"), num(q, "classes_covered")
    n_scored = fmt(num(q, "num_samples"), ".0f")
    rows = [["Fréchet distance to real test digits (classifier features)", fmt(dist, ".2f")],
            [f"its floor: real training vs real test digits, the same N = {n_scored}", fmt(floor, ".2f")],
            ["classifier's mean confidence on samples", fmt(conf, ".3f")],
            ["confidently labelled (> 0.9)", fmt(confident, ".1%")],
            ["classes covered (of 10)", fmt(classes, ".0f")],
            ["samples scored", fmt(num(q, "num_samples"), ".0f")],
            ["U-Net parameters", fmt(num(s, "unet_params"), ",.0f")],
            ["training seconds (autoencoder + U-Net)", fmt(num(s, "train_seconds"), ".0f")],
            ["quality classifier's test accuracy", fmt(num(s, "classifier", "test_accuracy"), ".2%")]]
    if dist is None or conf is None or classes is None:
        quality, quality_text = NOT_MEASURED, "sample quality was not measured"
    else:
        if classes >= 10 and conf >= 0.8:
            quality = SUPPORTED
        elif classes >= 8 and conf >= 0.5:
            quality = PARTLY
        else:
            quality = NOT_SUPPORTED
        quality_text = (f"from pure noise, DDIM-{get(q, 'steps', default='?')} samples cover {classes:.0f}/10 classes "
                        f"with mean classifier confidence {conf:.2f}; Fréchet distance {dist:.1f} vs the real-data "
                        "floor " + (f"{floor:.1f} ({dist / floor:.0f}× the floor)" if floor else NOT_MEASURED)
                        + " (digits: all 10 classes and confidence ≥ 0.8)")
    structure, structure_text, structure_effect = structure_verdict(get(s, "structure_first"))
    fewer, fewer_text, fewer_effect = fewer_steps_verdict(get(run.extra.get("eval.json", {}), "fewer_steps"))
    verdict = combine(quality, structure, fewer)
    text = "; ".join((quality_text, "structure first: " + structure_text, "far fewer steps: " + fewer_text))
    rule = (f"samples are digits (all 10 classes, classifier confidence ≥ 0.8); structure first: {STRUCTURE_RULE}; "
            f"far fewer steps: {FEWER_STEPS_RULE}; supported when all three hold, partly when some do")
    sec = Section("diffusion", "DDPM / DDIM: generating digits by repeated denoising",
                  "A network trained to predict the noise turns pure noise into digits step by step — early steps lay "
                  "down structure, late steps detail — and DDIM samples with far fewer steps.", verdict, text,
                  tables=[Table(["quantity", "value"], rows, f"{get(s, 'config', 'space', default='')} diffusion, "
                                                             f"{get(s, 'train_images', default='?')} training digits")],
                  rule=rule, effect="; ".join((structure_effect, fewer_effect)),
                  sentence=sentence(verdict, claim_parts(s, get(run.extra.get("eval.json", {}), "fewer_steps"),
                                                         quality)))
    agreement = [v for v in get(s, "structure_first", "agreement", default=[]) or [] if isinstance(v, (int, float))]
    if agreement:
        shown = sorted({0, len(agreement) // 10, len(agreement) // 4, len(agreement) // 2, 3 * len(agreement) // 4,
                        len(agreement) - 1})
        sec.tables.append(Table(["DDIM step"] + [str(k + 1) for k in shown],
                                [["label of x̂₀ = final label"] + [f"{agreement[k]:.0%}" for k in shown]],
                                "the label-free chain: share of samples whose x̂₀ already has its final label"))
    ev = run.extra.get("eval.json", {})
    if get(ev, "rows"):
        ev_rows = [[str(get(r, "sampler", default="?")).upper(), str(get(r, "steps", default="?")),
                    fmt(num(r, "frechet_distance"), ".2f"), fmt(num(r, "mean_confidence"), ".3f"),
                    fmt(num(r, "classes_covered"), ".0f"), fmt(num(r, "seconds"), ".1f")] for r in ev["rows"]]
        n_eval = get(ev, "num", default="?")
        ev_rows.append([f"floor: real training vs real test digits, N = {n_eval}", "",
                        fmt(num(ev, "frechet_floor"), ".2f"), "", "", ""])
        sec.tables.append(Table(["sampler", "steps", "Fréchet distance", "confidence", "classes", "seconds"], ev_rows,
                                f"quality vs sampling steps, {n_eval} samples each"))
        if num(ev, "frechet_floor") is not None and floor is not None and str(n_eval) != n_scored:
            sec.notes.append(f"Two floors, two sample sizes: a Fréchet distance between two finite sets shrinks as "
                             f"they grow, so each distance is set beside the floor of its own N — {floor:.2f} for "
                             f"the {n_scored} samples of the first table, {num(ev, 'frechet_floor'):.2f} for the "
                             f"{n_eval} samples per sampler of the second.")
    samples = sorted(p.name for p in run.folder.glob("samples-*.png"))
    captions = {"samples.png": "Samples from pure noise, one grid (DDIM, EMA weights).",
                "trajectory.png": "From x_T to x_0 for a few samples: the rough shape appears early, the strokes sharpen "
                                  "late.",
                "sidebyside.png": "Exercise 2's ladder and DDPM from the same pure noise, step by step."}
    for name in samples:  # samples-<sampler><steps>[-eta<e>][-w<w>].png, written by `connlab diffusion sample`
        captions[name] = f"Samples written by connlab diffusion sample ({name[len('samples-'):-len('.png')]})."
    return with_figures(sec, run, {**{k: captions[k] for k in ("samples.png", "trajectory.png")},
                                   **{k: captions[k] for k in samples}, "sidebyside.png": captions["sidebyside.png"]})
