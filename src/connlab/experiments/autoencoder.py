"""``connlab autoencoder`` — Exercise 1: denoise MNIST without and with skip connections.

Trains the lecture's encoder-decoder for each ``--skip`` variant (and ``--seeds K`` seeds),
evaluates it on one fixed noisy copy of the test set against the trivial baselines (the
noisy input itself; the mean training image), and writes the run folder:

    summary.json          per variant: params, test_bce/mse/psnr/ssim, train_seconds, ...
    comparison.md/.json   the variants side by side (mean ± std over seeds)
    reconstructions.png   noisy / reconstructed (one row per variant) / clean
    loss_curves.png       train loss and test BCE per epoch, all variants
    iterate.png           with --iterate K: the denoiser fed its own output K times
    variants/<skip>-seed<s>/   metrics.jsonl, model.safetensors, checkpoints/

``--preset course`` is the course's Exercise 1 exactly (CIML 2023/2024 "special connections"
notebooks): the network with its 16-filter bottleneck and Keras' initialisation, salt-and-pepper
noise ``clip(x + round(U(−1, 1)))`` drawn once for the training set (per seed) and once for the
validation set, MNIST's first 1,000 training digits, validation on MNIST's test set when the full
MNIST is at hand (else the 9,000 other embedded digits; the summary says which), Adam (lr 1e-3),
BCE, batch 128, 20 epochs, early stopping with patience 5 on the validation BCE, the last weights
kept. ``--skip all`` compares the course's two networks: none and both concatenation skips.
One difference, for the cost: the course's early stopping watches the loss on all 10,000
validation digits every epoch, which costs some three times an epoch's training on 1,000 digits;
here it watches a fixed slice, the first ``--monitor-images`` (1,000) noisy validation digits.
The final ``test_bce`` is on every validation digit. The summary sets the course's published
figures beside our seeds (``reproduction``: ``connlab.evidence.reproduction``).

The report's section (lab and course) is ``connlab.experiments.autoencoder_page``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchinfo import summary

from connlab import plots
from connlab.checkpoint import atomic_write_json, atomic_write_text
from connlab.data import check_noise, corrupt, to_unit
from connlab.data.course import DATASET, load_course_data
from connlab.data.noise import rounded_endpoint
from connlab.errors import UserError
from connlab.experiments.common import (DataSettings, TrainingSettings, add_config_flags, from_flags,
                                        nonnegative_float, nonnegative_int, positive_int, run_training)
from connlab.experiments.autoencoder_measures import (SHOWN, comparison_rows, course_reproduction, iterate_denoiser,
                                                     skip_evidence, trivial_baselines)
from connlab.experiments.autoencoder_page import RULES, section  # noqa: F401  section: the registry's builder
from connlab.experiments.config import flag
from connlab.experiments.section import evidence_line, fmt, pm
from connlab.experiments.variants import load_images, mean_spread, over_seeds, train_variant
from connlab.metrics import bce, image_metrics
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder, count_parameters
from connlab.runs import write_summary
from connlab.train import EarlyStopping, pick_device

SKIP_CHOICES = ("none", "concat", "add", "all")
NOISE_DISTS = ("norm", "uniform", "salt-pepper")
EVAL_SEED = 1234  # the noisy test set is the same for every variant and seed
TRAIN_NOISE_SEED = 977  # with the seed: the course's training noise, drawn once per seed


@dataclass(frozen=True)
class AutoencoderExperiment(TrainingSettings, DataSettings):
    # A preset fills only the flags not given on the command line (connlab.experiments.config).
    PRESETS = {
        "course": dict(skip="all", upsample="nearest", bottleneck=16, init="keras", noise=1.0,
                       noise_dist="salt-pepper", noise_draw="once", dataset="course", epochs=20, batch_size=128,
                       lr=1e-3, patience=5, monitor_images=1000, validation_images=0, iterate=6),
        # --dataset course: MNIST's first 1,000 training digits and a validation set (connlab.data.course)
    }
    PRESET_FIELD = "preset"

    preset: str = flag("lab", "lab: the lab's setting; course: the course's Exercise 1 exactly (its network, "
                              "noise, 1,000 digits, training and early stopping)", choices=("lab", "course"))
    skip: str = flag("all", "skip connections (all: compare; under the course preset none vs concat, the "
                            "course's comparison)", choices=SKIP_CHOICES)
    upsample: str = flag("nearest", "UpSampling2D (nearest) or Conv2DTranspose(kernel 2, stride 2)",
                         choices=("nearest", "transpose"))
    bottleneck: int = flag(0, "filters of a 3x3 conv at 7x7 between encoder and decoder (0: none)",
                           type=nonnegative_int)
    init: str = flag("torch", "initialisation: PyTorch's default or Keras' (Glorot-uniform, zero biases)",
                     choices=("torch", "keras"))
    noise: float = flag(0.5, "noise magnitude", type=nonnegative_float)
    noise_dist: str = flag("norm", "noise distribution (salt-pepper: clip(x + round(mag·U(−1, 1))), the course's "
                                   "at magnitude 1)", choices=NOISE_DISTS)
    noise_draw: str = flag("epoch", "draw the training noise afresh every epoch, or once for the whole run "
                                    "(the course)", choices=("epoch", "once"))
    seeds: int = flag(1, "repeat each variant with K seeds", type=positive_int)
    patience: int = flag(0, "early stopping: stop after N epochs without a lower validation BCE, last weights "
                            "kept (Keras' rule; 0: off)", type=nonnegative_int)
    monitor_images: int = flag(1000, "validation digits the per-epoch validation BCE (and early stopping) reads: "
                                     "a fixed slice, the first N (0: all)", type=nonnegative_int)
    validation_images: int = flag(0, "--dataset course: validate on the first N validation digits (0: all, as the "
                                     "course)", type=nonnegative_int)
    iterate: int = flag(0, "feed the denoised output back and measure K passes (pass 1: the prediction; "
                           "0: off)", type=nonnegative_int, show_default=False)
    epochs: int = 3

    @property
    def variants(self) -> tuple[str, ...]:
        if self.skip == "all":
            return ("none", "concat") if self.preset == "course" else ("none", "concat", "add")
        return (self.skip,)

    def model_config(self, skip: str):
        return from_flags(AutoencoderConfig, skip, self.upsample, self.bottleneck, self.init)

    def course_deviations(self) -> dict:
        """The fields where this run differs from the course's protocol: {field: (ours, the course's)}."""
        course = {**self.PRESETS["course"], "limit": None}
        course.pop("skip"), course.pop("iterate"), course.pop("monitor_images")  # what is compared / shown
        return {k: (getattr(self, k), v) for k, v in course.items() if getattr(self, k) != v}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summary", action="store_true", help="print the model summary table and exit")
    add_config_flags(p, AutoencoderExperiment, "autoencoder", run)


def run(args: argparse.Namespace) -> int:
    cfg = AutoencoderExperiment.from_args(args)
    if args.summary:
        print_summaries(cfg)
        return 0
    check_flags(cfg)  # before the run folder is made: a refused flag leaves nothing behind
    return run_training(args, "autoencoder", cfg, run_experiment, lambda summary, cfg: format_table(summary))


def print_summaries(cfg: AutoencoderExperiment) -> None:
    for skip in cfg.variants:
        model = DenoisingAutoencoder(cfg.model_config(skip))
        print(f"== skip={skip}, upsample={cfg.upsample}, bottleneck={cfg.bottleneck or 'none'}")
        print(summary(model, input_size=(1, 1, 28, 28), depth=3, col_names=("output_size", "num_params"),
                      verbose=0))


def check_flags(cfg: AutoencoderExperiment) -> None:
    """What the flags cannot say alone: the noise's magnitude for its distribution, the course's data."""
    if cfg.validation_images and cfg.dataset != DATASET:
        raise UserError("--validation-images needs the course's data (--dataset course, or --preset course)")
    if cfg.noise_dist == "salt-pepper":
        if not cfg.noise > 0:
            raise UserError(f"--noise must be > 0 for salt-pepper noise (the course's: 1), got {cfg.noise}")
    else:
        check_noise(cfg.noise, cfg.noise_dist)


def add_noise(x, cfg: AutoencoderExperiment, generator):
    """The run's corruption of clean images ``x`` in [0, 1] (the course's: salt-pepper at magnitude 1)."""
    if cfg.noise_dist == "salt-pepper":  # = connlab.data.salt_and_pepper at magnitude 1
        return rounded_endpoint(x, cfg.noise, "uniform", generator)
    return corrupt(x, cfg.noise, cfg.noise_dist, generator)


def load_data(cfg: AutoencoderExperiment):
    """(device, ImageData, validation): the course's digits (``--dataset course``) or the lab's data set."""
    if cfg.dataset != DATASET:
        device, data = load_images(cfg)
        return device, data, None
    device = pick_device(cfg.device)
    digits = load_course_data(cfg.data_dir, n_train=cfg.limit or 1000, n_validation=cfg.validation_images or None)
    return device, digits.data.to(device), digits.describe()


def run_experiment(cfg: AutoencoderExperiment, out: Path, resume: bool = False) -> dict:
    check_flags(cfg)
    for skip in cfg.variants:
        cfg.model_config(skip)  # a bad flag value fails before any training
    device, data, validation = load_data(cfg)
    test = TestSet.of(cfg, data, device, validation is not None)
    runs, models = train_variants(cfg, out, resume, data, device, test)
    baselines = trivial_baselines(test.noisy, test.mean_image, test.clean)
    variants = {skip: {"params": count_parameters(models[skip]),
                       **mean_spread(per_seed, ("test_bce", "test_mse", "test_psnr", "test_ssim", "train_seconds",
                                                "train_images_per_second")),
                       "seeds": [{k: v for k, v in r.items() if k != "history"} for r in per_seed]}
                for skip, per_seed in runs.items()}
    summary = build_summary(cfg, data, device, validation, test, variants, baselines)
    draw_figures(cfg, out, models, runs, test, baselines, validation is not None)
    if cfg.iterate:
        # on the monitored slice: the lab's 1,000 test digits; of the course's 9,000-10,000, the first 1,000
        summary["iterate"] = iterate_denoiser(models, test.noisy[test.monitored], test.clean[test.monitored],
                                              cfg.iterate, out, plots, image_metrics, reconstruct)
    write_summary(out, summary)

    atomic_write_json(out / "comparison.json", {"variants": {k: {m: v for m, v in e.items() if m != "seeds"}
                                                            for k, e in variants.items()},
                                               "baselines": baselines, "comparison": summary["comparison"]})
    atomic_write_text(out / "comparison.md", format_table(summary) + "\n")
    return summary


@dataclass
class TestSet:
    """The digits every variant and seed is scored on: clean, with the run's noise drawn once, the mean
    training image (a baseline), the slice the per-epoch validation BCE reads, and that number's key."""

    clean: torch.Tensor
    noisy: torch.Tensor
    mean_image: torch.Tensor
    monitored: slice
    epoch_key: str

    @classmethod
    def of(cls, cfg: AutoencoderExperiment, data, device, validates: bool) -> "TestSet":
        clean = to_unit(data.test_images)
        noisy = add_noise(clean, cfg, torch.Generator(device=device).manual_seed(EVAL_SEED))
        monitored = slice(0, cfg.monitor_images or None)   # what the per-epoch validation BCE reads
        mean_image = to_unit(data.train_images).mean(0, keepdim=True).expand_as(clean)
        epoch_key = "val_bce" if validates else "test_bce"   # the course validates; the lab tests
        return cls(clean, noisy, mean_image, monitored, epoch_key)


def reconstruct(model, x):
    """The denoiser's images in [0, 1] for noisy ``x`` (N, 1, 28, 28), a thousand at a time."""
    return torch.cat([torch.sigmoid(model(chunk).float()) for chunk in x.split(1000)])


def train_variants(cfg: AutoencoderExperiment, out: Path, resume: bool, data, device, test: TestSet):
    """Every ``--skip`` variant over the seeds: ({skip: [record per seed]}, {skip: its first seed's model})."""
    early_stopping = EarlyStopping(test.epoch_key, patience=cfg.patience) if cfg.patience else None

    def loss_fn(model, batch, generator):
        clean = to_unit(batch[0])
        noisy = add_noise(clean, cfg, generator)
        return F.binary_cross_entropy_with_logits(model(noisy).float(), clean)

    def loss_on_fixed_noise(model, batch, generator):  # the course: one noisy copy of the training set
        noisy, clean = batch
        return F.binary_cross_entropy_with_logits(model(noisy).float(), clean)

    def training_data(seed: int) -> tuple:
        if cfg.noise_draw == "epoch":
            return (data.train_images,)
        clean = to_unit(data.train_images)
        g = torch.Generator(device=device).manual_seed(TRAIN_NOISE_SEED * 1_000_003 + seed)
        return (add_noise(clean, cfg, g), clean)

    def evaluate(model):
        return {test.epoch_key: bce(reconstruct(model, test.noisy[test.monitored]),
                                    test.clean[test.monitored]).item()}

    models: dict[str, torch.nn.Module] = {}  # the first seed's model of each variant, for the figures

    def train_one(skip: str, seed: int) -> dict:
        model_cfg = cfg.model_config(skip)
        # the per-epoch validation curve is drawn for the first seed only: without early stopping the other
        # seeds skip it (a fifth of their cost; training is unchanged); early stopping needs it every epoch
        watch = seed == cfg.seed or early_stopping is not None
        model, result = train_variant(cfg, out, f"{skip}-seed{seed}", lambda: DenoisingAutoencoder(model_cfg),
                                      loss_fn if cfg.noise_draw == "epoch" else loss_on_fixed_noise,
                                      training_data(seed), device, model_config=asdict(model_cfg), seed=seed,
                                      evaluate=evaluate if watch else None, resume=resume,
                                      label=f"{skip} seed {seed}", early_stopping=early_stopping)
        models.setdefault(skip, model)
        with torch.no_grad():
            scores = image_metrics(reconstruct(model, test.noisy), test.clean)
        return {"seed": seed, **{f"test_{k}": v for k, v in scores.items()}, "train_seconds": result.train_seconds,
                "train_images_per_second": result.train_images_per_second, "epochs_run": result.epochs,
                "stopped_epoch": result.stopped_epoch, "history": result.history}

    return over_seeds(cfg.variants, range(cfg.seed, cfg.seed + cfg.seeds), train_one), models


def build_summary(cfg: AutoencoderExperiment, data, device, validation: dict | None, test: TestSet, variants: dict,
                  baselines: dict) -> dict:
    summary = {
        "experiment": "autoencoder", "protocol": cfg.preset, "dataset": data.name, "data_source": data.source,
        "device": str(device), "train_images": len(data.train_images), "test_images": len(data.test_images),
        "noise": cfg.noise, "noise_dist": cfg.noise_dist, "noise_draw": cfg.noise_draw, "epochs": cfg.epochs,
        "seeds": cfg.seeds, "patience": cfg.patience,
        "monitor_images": len(test.clean[test.monitored]), "variants": variants, "baselines": baselines,
        "comparison": comparison_rows(variants), "evidence": skip_evidence(variants),
    }
    if validation is not None:
        summary["validation"] = validation["validation"]
        summary["validation_text"] = validation["validation_text"]
    if cfg.preset == "course":
        summary["course"] = course_reproduction(variants, cfg.course_deviations(), summary.get("validation"))
    return summary


def draw_figures(cfg: AutoencoderExperiment, out: Path, models: dict, runs: dict, test: TestSet, baselines: dict,
                 validates: bool) -> None:
    """reconstructions.png (noisy / each variant / clean) and loss_curves.png (the first seed's)."""
    shown = slice(0, SHOWN)
    noise_text = ("salt and pepper, drawn once" if cfg.noise_dist == "salt-pepper" and cfg.noise_draw == "once"
                  else f"noise {cfg.noise} ({cfg.noise_dist})")
    with torch.no_grad():
        rows = [("noisy", test.noisy[shown])]
        rows += [(f"skip={s}", reconstruct(m, test.noisy[shown])) for s, m in models.items()]
        rows.append(("clean", test.clean[shown]))
        plots.image_rows(rows, out / "reconstructions.png", f"{noise_text}, {cfg.epochs} epochs")
    series = {}
    for skip, per_seed in runs.items():
        hist = per_seed[0]["history"]
        epochs = [h["epoch"] for h in hist]
        series[f"{skip}: train"] = (epochs, [h["train_loss"] for h in hist])
        series[f"{skip}: {'validation' if validates else 'test'}"] = (epochs, [h[test.epoch_key] for h in hist])
    plots.curves(series, out / "loss_curves.png", "epoch", "BCE",
                 f"loss curves (seed {cfg.seed}); mean-image PSNR {baselines['mean_image']['psnr']:.2f} dB")


def format_table(summary: dict) -> str:
    lines = [f"| model | params | test BCE | test MSE | PSNR (dB) | SSIM | train s | img/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for skip, e in summary["variants"].items():
        pm = lambda key, fmt: (f"{e[key]:{fmt}} ± {e[key + '_std']:{fmt}}" if summary["seeds"] > 1  # noqa: E731
                               else f"{e[key]:{fmt}}")
        lines.append(f"| skip={skip} | {e['params']:,} | {pm('test_bce', '.4f')} | {pm('test_mse', '.4f')} | "
                     f"{pm('test_psnr', '.2f')} | {pm('test_ssim', '.3f')} | {e['train_seconds']:.1f} | "
                     f"{e['train_images_per_second']:.0f} |")
    for name, b in summary["baselines"].items():
        bce_text = "—" if b.get("bce") is None else f"{b['bce']:.4f}"
        lines.append(f"| baseline: {name.replace('_', ' ')} | 0 | {bce_text} | {b['mse']:.4f} | "
                     f"{b['psnr']:.2f} | {b['ssim']:.3f} | | |")
    for skip, per in summary.get("evidence", {}).items():
        for metric in ("psnr", "bce"):
            lines.append(f"\nskip={skip} vs none: " + evidence_line(per.get(metric), RULES[metric].format(skip=skip),
                                                                       metric.upper())[1])
    return "\n".join(lines)
