"""``connlab diffusion train | sample | eval`` — DDPM and DDIM on MNIST, in pixel or latent space.

    connlab diffusion train [--preset default|demo|pixel] [--space pixel|latent] ...
    connlab diffusion sample --run DIR --sampler ddpm|ddim --steps K --num N [--eta E] [--guidance W] [--save-npz P]
                             [--ladder-run LADDER_DIR [--ladder-variant NAME]]
    connlab diffusion eval --run DIR [--num N]

This file is the command line and the training recipe (``diffusion_sample``: the sample and eval
actions; ``diffusion_page``: the report's section).  The pieces compose as in DESIGN.md:
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
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from connlab.checkpoint import atomic_write_json, load_weights, model_signature, save_weights
from connlab.data import load_dataset, to_unit, unit_to_signed
from connlab.data.global_batch import batch_rand, batch_randint, batch_randn
from connlab.diffusion import EMA, NoiseSchedule, diffusion_loss
from connlab.errors import UserError
from connlab.experiments.classifier import find_or_train_classifier as find_classifier
from connlab.experiments.common import (DataSettings, TrainingSettings, add_training_command, from_flags, int_list,
                                        nonnegative_float, nonnegative_int, positive_int)
from connlab.experiments.config import flag
from connlab.experiments.diffusion_sample import EvalCommand, SampleCommand, run_eval, run_sample, set_threads
from connlab.experiments.diffusion_page import section  # noqa: F401  the registry's section builder
from connlab.metrics import image_metrics
from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig
from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
from connlab.quality import load_classifier
from connlab.runs import resumable, write_summary
from connlab.runtime.speed import Speed
from connlab.sampling.evaluate import EVAL_SEED, floor, score, structure_claim
from connlab.sampling.generate import Generator, plain_config
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

def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p), required=True)

    t = sub.add_parser("train", help="train a DDPM (pixel or latent space)")
    add_training_command(t, DiffusionExperiment, "diffusion", train, describe, config=checked_config)

    s = sub.add_parser("sample", help="sample digits from a trained run")
    SampleCommand.add_flags(s)
    s.set_defaults(run=lambda args: run_sample(SampleCommand.from_args(args), DiffusionExperiment))

    e = sub.add_parser("eval", help="distance and time vs sampler and steps")
    EvalCommand.add_flags(e)
    e.set_defaults(run=lambda args: run_eval(EvalCommand.from_args(args), DiffusionExperiment))


def config_from_args(args: argparse.Namespace) -> DiffusionExperiment:
    """The preset, then the given flags; a preset's guidance w applies to its class-conditional model only."""
    cfg = DiffusionExperiment.from_args(args)
    if getattr(args, "guidance", None) is not None and not cfg.class_cond:
        raise UserError("--guidance needs a class-conditional run (add --class-cond)")
    return replace(cfg, guidance=cfg.guidance if cfg.class_cond else None)


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
    set_threads(cfg.threads, device)
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
