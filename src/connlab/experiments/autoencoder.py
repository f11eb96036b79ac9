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
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from connlab.experiments.common import (DataSettings, TrainingSettings, add_config_flags, nonnegative_float,
                                        positive_int, run_training)
from connlab.experiments.config import flag
from connlab.experiments.section import (INCONCLUSIVE, UNKNOWN, Run, Section, Table, beyond_seed_spread, compare,
                                         fmt, get, num, pm, with_figures)

SKIP_CHOICES = ("none", "concat", "add", "all")
EVAL_SEED = 1234  # the noisy test set is the same for every variant and seed
SHOWN = 10        # test digits in the figures


@dataclass(frozen=True)
class AutoencoderExperiment(TrainingSettings, DataSettings):
    skip: str = flag("all", "skip connections (all: compare)", choices=SKIP_CHOICES)
    upsample: str = flag("nearest", "UpSampling2D (nearest) or Conv2DTranspose(kernel 2, stride 2)",
                         choices=("nearest", "transpose"))
    noise: float = flag(0.5, "noise magnitude", type=nonnegative_float)
    noise_dist: str = flag("norm", "noise distribution", choices=("norm", "uniform"))
    seeds: int = flag(1, "repeat each variant with K seeds", type=positive_int)
    iterate: int = flag(0, "feed the denoised output back K times and measure each pass (0: off)",
                        type=positive_int, show_default=False)
    epochs: int = 3

    @property
    def variants(self) -> tuple[str, ...]:
        return ("none", "concat", "add") if self.skip == "all" else (self.skip,)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summary", action="store_true", help="print the model summary table and exit")
    add_config_flags(p, AutoencoderExperiment, "autoencoder", run)


def run(args: argparse.Namespace) -> int:
    cfg = AutoencoderExperiment.from_args(args)
    if args.summary:
        print_summaries(cfg)
        return 0
    return run_training(args, "autoencoder", cfg, run_experiment, lambda summary, cfg: format_table(summary))




def print_summaries(cfg: AutoencoderExperiment) -> None:
    from torchinfo import summary

    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder

    for skip in cfg.variants:
        model = DenoisingAutoencoder(AutoencoderConfig(skip, cfg.upsample))
        print(f"== skip={skip}, upsample={cfg.upsample}")
        print(summary(model, input_size=(1, 1, 28, 28), depth=3, col_names=("output_size", "num_params"),
                      verbose=0))


def run_experiment(cfg: AutoencoderExperiment, out: Path, resume: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    from connlab import plots
    from connlab.data import check_noise, corrupt, to_unit
    from connlab.experiments.variants import load_images, mean_spread, over_seeds, train_variant
    from connlab.metrics import bce, image_metrics
    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder, count_parameters
    from connlab.runs import write_summary

    check_noise(cfg.noise, cfg.noise_dist)
    device, data = load_images(cfg)
    clean_test = to_unit(data.test_images)
    noisy_test = corrupt(clean_test, cfg.noise, cfg.noise_dist,
                         torch.Generator(device=device).manual_seed(EVAL_SEED))
    mean_image = to_unit(data.train_images).mean(0, keepdim=True).expand_as(clean_test)

    def loss_fn(model, batch, generator):
        clean = to_unit(batch[0])
        noisy = corrupt(clean, cfg.noise, cfg.noise_dist, generator)
        return F.binary_cross_entropy_with_logits(model(noisy).float(), clean)

    def reconstruct(model, x):
        return torch.cat([torch.sigmoid(model(chunk).float()) for chunk in x.split(1000)])

    def evaluate(model):
        return {"test_bce": bce(reconstruct(model, noisy_test), clean_test).item()}

    models: dict[str, torch.nn.Module] = {}  # the first seed's model of each variant, for the figures

    def train_one(skip: str, seed: int) -> dict:
        model_cfg = AutoencoderConfig(skip, cfg.upsample)
        model, result = train_variant(cfg, out, f"{skip}-seed{seed}", lambda: DenoisingAutoencoder(model_cfg),
                                      loss_fn, (data.train_images,), device, model_config=asdict(model_cfg),
                                      seed=seed, evaluate=evaluate, resume=resume, label=f"{skip} seed {seed}")
        models.setdefault(skip, model)
        with torch.no_grad():
            scores = image_metrics(reconstruct(model, noisy_test), clean_test)
        return {"seed": seed, **{f"test_{k}": v for k, v in scores.items()}, "train_seconds": result.train_seconds,
                "train_images_per_second": result.train_images_per_second, "history": result.history}

    runs = over_seeds(cfg.variants, range(cfg.seed, cfg.seed + cfg.seeds), train_one)
    baselines = {"noisy_input": image_metrics(noisy_test, clean_test),
                 "mean_image": image_metrics(mean_image, clean_test)}
    variants = {skip: {"params": count_parameters(models[skip]),
                       **mean_spread(per_seed, ("test_bce", "test_mse", "test_psnr", "test_ssim", "train_seconds",
                                                "train_images_per_second")),
                       "seeds": [{k: v for k, v in r.items() if k != "history"} for r in per_seed]}
                for skip, per_seed in runs.items()}

    summary = {
        "experiment": "autoencoder", "dataset": data.name, "data_source": data.source, "device": str(device),
        "train_images": len(data.train_images), "test_images": len(data.test_images),
        "noise": cfg.noise, "noise_dist": cfg.noise_dist, "epochs": cfg.epochs, "seeds": cfg.seeds,
        "variants": variants, "baselines": baselines, "comparison": comparison_rows(variants),
    }

    shown = slice(0, SHOWN)
    with torch.no_grad():
        rows = [("noisy", noisy_test[shown])]
        rows += [(f"skip={s}", reconstruct(m, noisy_test[shown])) for s, m in models.items()]
        rows.append(("clean", clean_test[shown]))
        plots.image_rows(rows, out / "reconstructions.png",
                         f"noise {cfg.noise} ({cfg.noise_dist}), {cfg.epochs} epochs")
    series = {}
    for skip, per_seed in runs.items():
        hist = per_seed[0]["history"]
        epochs = [h["epoch"] for h in hist]
        series[f"{skip}: train"] = (epochs, [h["train_loss"] for h in hist])
        series[f"{skip}: test"] = (epochs, [h["test_bce"] for h in hist])
    plots.curves(series, out / "loss_curves.png", "epoch", "BCE",
                 f"loss curves (seed {cfg.seed}); noisy-input BCE {baselines['noisy_input']['bce']:.3f}")

    if cfg.iterate:
        summary["iterate"] = iterate_denoiser(models, noisy_test, clean_test, cfg.iterate, out, plots,
                                              image_metrics, reconstruct)
    write_summary(out, summary)
    from connlab.checkpoint import atomic_write_json, atomic_write_text

    atomic_write_json(out / "comparison.json", {"variants": {k: {m: v for m, v in e.items() if m != "seeds"}
                                                            for k, e in variants.items()},
                                               "baselines": baselines, "comparison": summary["comparison"]})
    atomic_write_text(out / "comparison.md", format_table(summary) + "\n")
    return summary


def comparison_rows(variants: dict) -> list[dict]:
    """Each skip variant against ``none``: the BCE difference and whether it exceeds the seed spread
    (``section.beyond_seed_spread``; with one seed there is no spread, and the verdict says so)."""
    if "none" not in variants:
        return []
    base = variants["none"]
    rows = []
    for skip, entry in variants.items():
        if skip == "none":
            continue
        diff = entry["test_bce"] - base["test_bce"]
        spread = entry["test_bce_std"] + base["test_bce_std"]
        beyond = beyond_seed_spread(base["test_bce"], base["test_bce_std"], entry["test_bce"], entry["test_bce_std"],
                                    len(entry["seeds"]))
        if beyond is None:
            verdict = "one seed: no spread to compare with (use --seeds K)"
        elif beyond:
            verdict = "better than none beyond seed spread" if diff < 0 else "worse than none beyond seed spread"
        else:
            verdict = "within seed spread"
        rows.append({"variant": skip, "vs": "none", "bce_difference": diff, "seed_spread": spread,
                     "exceeds_spread": bool(beyond), "verdict": verdict})
    return rows


def iterate_denoiser(models, noisy, clean, k, out, plots, image_metrics, reconstruct) -> dict:
    """Feed each denoiser its own output K times: the lecture's (A) / (B) / (C) question."""
    import torch

    result, rows = {}, [("noisy", noisy[:SHOWN])]
    with torch.no_grad():
        for skip, model in models.items():
            x, per_pass = noisy, []
            for i in range(1, k + 1):
                x = reconstruct(model, x)
                scores = image_metrics(x, clean)
                scores["mean_intensity"] = x.mean().item()
                per_pass.append({"pass": i, **scores})
                if i in (1, k) or k <= 4:
                    rows.append((f"{skip} x{i}", x[:SHOWN]))
            result[skip] = per_pass
    rows.append(("clean", clean[:SHOWN]))
    result["clean_mean_intensity"] = clean.mean().item()
    plots.image_rows(rows, out / "iterate.png", f"denoiser fed its own output, {k} passes")
    return result


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
        lines.append(f"| baseline: {name.replace('_', ' ')} | 0 | {b['bce']:.4f} | {b['mse']:.4f} | "
                     f"{b['psnr']:.2f} | {b['ssim']:.3f} | | |")
    for row in summary.get("comparison", []):
        lines.append(f"\nskip={row['variant']} vs none: BCE {row['bce_difference']:+.4f} "
                     f"(seed spread {row['seed_spread']:.4f}): {row['verdict']}")
    return "\n".join(lines)


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

def section(run: Run) -> Section:
    s = run.summary
    variants = get(s, "variants", default={}) or {}
    seeds = get(s, "seeds")
    rows = []
    for name, e in variants.items():
        rows.append([f"skip = {name}", fmt(num(e, "params"), ",.0f"), pm(num(e, "test_bce"), num(e, "test_bce_std")),
                     pm(num(e, "test_psnr"), num(e, "test_psnr_std"), ".2f"),
                     pm(num(e, "test_ssim"), num(e, "test_ssim_std"), ".3f"), fmt(num(e, "train_seconds"), ".0f")])
    for name, b in (get(s, "baselines", default={}) or {}).items():
        rows.append([f"baseline: {name.replace('_', ' ')}", "0", fmt(num(b, "bce")), fmt(num(b, "psnr"), ".2f"),
                     fmt(num(b, "ssim"), ".3f"), ""])
    skips = [k for k in variants if k != "none"]
    best = min(skips, key=lambda k: num(variants, k, "test_bce") or math.inf) if skips else None
    if "none" in variants and best is not None:
        verdict, text = compare(num(variants, "none", "test_bce"), num(variants, "none", "test_bce_std"),
                                num(variants, best, "test_bce"), num(variants, best, "test_bce_std"),
                                seeds, "test BCE", higher_is_better=False, what=f"skip connections ({best})")
    else:
        verdict, text = UNKNOWN, "needs the skip = none run and at least one skip variant (--skip all)"
    floor = num(s, "baselines", "mean_image", "bce")
    best_bce = min((v for v in (num(e, "test_bce") for e in variants.values()) if v is not None), default=None)
    if floor is not None and best_bce is not None and best_bce >= floor:
        verdict = INCONCLUSIVE
        text += f"; no model beats the mean-image baseline (BCE {floor:.4f}) yet"
    sec = Section("autoencoder", "Denoising autoencoder without and with skip connections (U-Net)",
                  "Skip connections from encoder to decoder (a U-Net) let a denoising autoencoder reconstruct digits "
                  "better than the plain encoder-decoder.", verdict, text,
                  tables=[Table(["model", "params", "test BCE", "PSNR (dB)", "SSIM", "train s"], rows,
                                f"{get(s, 'test_images', default='?')} noisy test digits (noise {get(s, 'noise')}, "
                                f"{get(s, 'noise_dist')}), {get(s, 'epochs')} epochs, mean ± std over {seeds} seed(s)")])
    iterate = get(s, "iterate")
    if isinstance(iterate, dict):
        passes = {k: v for k, v in iterate.items() if isinstance(v, list) and v}
        if passes:
            n = max(len(v) for v in passes.values())
            it_rows = [[f"skip = {k}"] + [fmt(num(v, i, "bce")) for i in range(n)] for k, v in passes.items()]
            sec.tables.append(Table(["denoiser fed its own output"] + [f"pass {i + 1}" for i in range(n)], it_rows,
                                    "test BCE after each pass (the lecture's A/B/C question)"))
            sec.notes.append(iterate_answer(passes, num(iterate, "clean_mean_intensity")))
    return with_figures(sec, run, ("reconstructions.png", "loss_curves.png", "iterate.png"))


def iterate_answer(passes: dict, clean_intensity: float | None) -> str:
    parts = []
    for name, per_pass in passes.items():
        first, last = num(per_pass, 0, "bce"), num(per_pass, -1, "bce")
        if first is None or last is None or len(per_pass) < 2:
            continue
        trend = "gets worse" if last > first * 1.01 else ("improves" if last < first * 0.99 else "stays put")
        parts.append(f"skip = {name}: BCE {first:.4f} → {last:.4f} over {len(per_pass)} passes ({trend})")
    if not parts:
        return "feeding the output back: not measured"
    return "feeding the denoised output back in: " + "; ".join(parts) + (
        f"; clean digits' mean intensity {clean_intensity:.3f}" if clean_intensity is not None else "")
