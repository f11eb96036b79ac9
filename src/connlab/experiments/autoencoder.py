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
from dataclasses import asdict, dataclass
from pathlib import Path

from connlab.experiments.common import (DataSettings, TrainingSettings, add_config_flags, nonnegative_float,
                                        nonnegative_int, positive_int, run_training)
from connlab.experiments.config import flag
from connlab.experiments.section import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, NOT_SUPPORTED, SUPPORTED, Run,
                                         Section, Table, effect_of, evidence_line, fmt, get, num, pm, weakest,
                                         with_figures)

SKIP_CHOICES = ("none", "concat", "add", "all")
EVAL_SEED = 1234  # the noisy test set is the same for every variant and seed
SHOWN = 10        # test digits in the figures
# The claim's rules, written once: the page prints them next to each comparison.
RULES = {
    "psnr": "compare(PSNR[none], PSNR[{skip}], better='higher'), paired by seed (same data order and noise), "
            "95 % t interval; supported when it lies above 0",
    "bce": "compare(BCE[none], BCE[{skip}], better='lower'), paired by seed, 95 % t interval; "
           "supported when it lies below 0",
}
ITERATE_RULE = ("per test digit, compare(PSNR after pass 1, PSNR after pass {k}, better='higher'), paired t over "
                "the test digits; supported → (A) it keeps improving, contradicted → (C) it walks away from the "
                "digit, interval around 0 → (B) no change at this budget")
ANSWERS = {SUPPORTED: "(A) keeps improving", CONTRADICTED: "(C) walks away from the digit",
           NOT_SUPPORTED: "(B) no measurable change at this budget"}


@dataclass(frozen=True)
class AutoencoderExperiment(TrainingSettings, DataSettings):
    skip: str = flag("all", "skip connections (all: compare)", choices=SKIP_CHOICES)
    upsample: str = flag("nearest", "UpSampling2D (nearest) or Conv2DTranspose(kernel 2, stride 2)",
                         choices=("nearest", "transpose"))
    noise: float = flag(0.5, "noise magnitude", type=nonnegative_float)
    noise_dist: str = flag("norm", "noise distribution", choices=("norm", "uniform"))
    seeds: int = flag(1, "repeat each variant with K seeds", type=positive_int)
    iterate: int = flag(0, "feed the denoised output back K times and measure each pass (0: off)",
                        type=nonnegative_int, show_default=False)
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
                                      # the per-epoch test curve is drawn for the first seed only: the other
                                      # seeds skip it (a fifth of their cost; training is unchanged)
                                      seed=seed, evaluate=evaluate if seed == cfg.seed else None, resume=resume,
                                      label=f"{skip} seed {seed}")
        models.setdefault(skip, model)
        with torch.no_grad():
            scores = image_metrics(reconstruct(model, noisy_test), clean_test)
        return {"seed": seed, **{f"test_{k}": v for k, v in scores.items()}, "train_seconds": result.train_seconds,
                "train_images_per_second": result.train_images_per_second, "history": result.history}

    runs = over_seeds(cfg.variants, range(cfg.seed, cfg.seed + cfg.seeds), train_one)
    baselines = trivial_baselines(noisy_test, mean_image, clean_test)
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
        "evidence": skip_evidence(variants),
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
                 f"loss curves (seed {cfg.seed}); mean-image PSNR {baselines['mean_image']['psnr']:.2f} dB")

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


def trivial_baselines(noisy, mean_image, clean) -> dict:
    """What a denoiser must beat: the noisy input and the mean training image (BCE, MSE, PSNR, SSIM).

    A BCE is kept only where PyTorch's log clamp does not dominate it (``measures.baseline_bce``):
    the clipped noisy input has exact 0/1 pixels where the clean digit disagrees, each costing
    100 × the disagreement, so its BCE is the clamp, not a measurement — None, with the note why.
    """
    from connlab.measures import baseline_bce, clamped_bce
    from connlab.metrics import image_metrics

    out = {}
    for name, pred in (("noisy_input", noisy), ("mean_image", mean_image)):
        scores = image_metrics(pred, clean)
        scores["bce"] = baseline_bce(pred, clean)
        if scores["bce"] is None:
            scores["bce_note"] = clamped_bce(pred, clean)["note"]
        out[name] = scores
    return out


def skip_evidence(variants: dict) -> dict:
    """Each skip variant against ``none``, paired by seed: {skip: {"psnr": Evidence dict, "bce": ...}}."""
    from connlab.evidence import compare

    if "none" not in variants:
        return {}
    base = variants["none"]["seeds"]
    out = {}
    for skip, entry in variants.items():
        if skip == "none":
            continue
        per = entry["seeds"]
        out[skip] = {"psnr": compare([r["test_psnr"] for r in base], [r["test_psnr"] for r in per],
                                     better="higher").as_dict(),
                     "bce": compare([r["test_bce"] for r in base], [r["test_bce"] for r in per],
                                    better="lower").as_dict()}
    return out


def comparison_rows(variants: dict) -> list[dict]:
    """Each skip variant against ``none``: the mean BCE and PSNR differences (the verdict is
    ``skip_evidence``'s interval, not this table)."""
    if "none" not in variants:
        return []
    base = variants["none"]
    return [{"variant": skip, "vs": "none", "bce_difference": entry["test_bce"] - base["test_bce"],
             "psnr_difference": entry["test_psnr"] - base["test_psnr"]}
            for skip, entry in variants.items() if skip != "none"]


def iterate_denoiser(models, noisy, clean, k, out, plots, image_metrics, reconstruct) -> dict:
    """Feed each denoiser its own output K times: the lecture's (A) / (B) / (C) question."""
    import torch

    from connlab.evidence import compare
    from connlab.metrics import psnr_per_image

    result, rows, evidence = {}, [("noisy", noisy[:SHOWN])], {}
    with torch.no_grad():
        for skip, model in models.items():
            x, per_pass, first = noisy, [], None
            for i in range(1, k + 1):
                x = reconstruct(model, x)
                per_digit = psnr_per_image(x.clamp(0, 1), clean).tolist()
                first = per_digit if first is None else first
                if i == k and k > 1:
                    evidence[skip] = compare(first, per_digit, better="higher", what="test digits").as_dict()
                scores = image_metrics(x, clean)
                scores["mean_intensity"] = x.mean().item()
                per_pass.append({"pass": i, **scores})
                if i in (1, k) or k <= 4:
                    rows.append((f"{skip} x{i}", x[:SHOWN]))
            result[skip] = per_pass
    rows.append(("clean", clean[:SHOWN]))
    result["clean_mean_intensity"] = clean.mean().item()
    result["evidence"] = evidence
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
        bce_text = "—" if b.get("bce") is None else f"{b['bce']:.4f}"
        lines.append(f"| baseline: {name.replace('_', ' ')} | 0 | {bce_text} | {b['mse']:.4f} | "
                     f"{b['psnr']:.2f} | {b['ssim']:.3f} | | |")
    for skip, per in summary.get("evidence", {}).items():
        for metric in ("psnr", "bce"):
            lines.append(f"\nskip={skip} vs none: " + evidence_line(per.get(metric), RULES[metric].format(skip=skip),
                                                                       metric.upper())[1])
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
    notes = []
    for name, b in (get(s, "baselines", default={}) or {}).items():
        bce_text = fmt(num(b, "bce")) if num(b, "bce") is not None else "—"
        rows.append([f"baseline: {name.replace('_', ' ')}", "0", bce_text, fmt(num(b, "psnr"), ".2f"),
                     fmt(num(b, "ssim"), ".3f"), ""])
        if num(b, "bce") is None and isinstance(get(b, "bce_note"), str):
            notes.append(f"baseline {name.replace('_', ' ')}: BCE not shown, dominated by the log clamp — "
                         f"{b['bce_note']}")
    skips = [k for k in variants if k != "none"]
    if "none" in variants and skips:
        lines, verdicts = [], []
        for skip in skips:
            for metric, label, spec, unit in (("psnr", "PSNR", ".2f", "dB"), ("bce", "test BCE", ".4f", "")):
                v, line = evidence_line(get(s, "evidence", skip, metric), RULES[metric].format(skip=skip),
                                        f"skip = {skip} vs none: {label}", spec=spec, unit=unit)
                verdicts.append(v)
                lines.append(line)
        verdict, text = weakest(verdicts), " | ".join(lines)
    else:
        verdict, text = NOT_MEASURED, "needs the skip = none run and at least one skip variant (--skip all)"
    floor = num(s, "baselines", "mean_image", "psnr")
    best_psnr = max((v for v in (num(e, "test_psnr") for e in variants.values()) if v is not None), default=None)
    if floor is not None and best_psnr is not None and best_psnr <= floor:
        verdict = INCONCLUSIVE
        text += f"; no model beats the mean-image baseline (PSNR {floor:.2f} dB) yet"
    sec = Section("autoencoder", "Denoising autoencoder without and with skip connections (U-Net)",
                  "Skip connections from encoder to decoder (a U-Net) let a denoising autoencoder reconstruct digits "
                  "better than the plain encoder-decoder.", verdict, text,
                  tables=[Table(["model", "params", "test BCE", "PSNR (dB)", "SSIM", "train s"], rows,
                                f"{get(s, 'test_images', default='?')} noisy test digits (noise {get(s, 'noise')}, "
                                f"{get(s, 'noise_dist')}), {get(s, 'epochs')} epochs, mean ± std over {seeds} seed(s)")],
                  notes=notes,
                  rule="PSNR higher and BCE lower with each skip variant than with none, each paired by seed with a "
                       "95 % t interval; supported when every one of these comparisons is (the weakest decides)",
                  effect=effect_of(get(s, "evidence", "concat", "psnr"), "concat − none PSNR", spec=".2f", unit="dB"))
    iterate = get(s, "iterate")
    if isinstance(iterate, dict):
        passes = {k: v for k, v in iterate.items() if isinstance(v, list) and v}
        if passes:
            n = max(len(v) for v in passes.values())
            it_rows = [[f"skip = {k}"] + [fmt(num(v, i, "psnr"), ".2f") for i in range(n)] for k, v in passes.items()]
            sec.tables.append(Table(["denoiser fed its own output"] + [f"pass {i + 1}" for i in range(n)], it_rows,
                                    "test PSNR (dB) after each pass (the lecture's A/B/C question)"))
            sec.notes.append(iterate_answer(passes, num(iterate, "clean_mean_intensity"), get(iterate, "evidence")))
    return with_figures(sec, run, ("reconstructions.png", "loss_curves.png", "iterate.png"))


def iterate_answer(passes: dict, clean_intensity: float | None, evidence: dict | None = None) -> str:
    """The A/B/C answer per variant: the rule on the stored per-digit comparison (pass 1 vs the last)."""
    parts = []
    for name, per_pass in passes.items():
        first, last = num(per_pass, 0, "psnr"), num(per_pass, -1, "psnr")
        if first is None or last is None or len(per_pass) < 2:
            continue
        verdict, line = evidence_line(get(evidence or {}, name), ITERATE_RULE.format(k=len(per_pass)),
                                      f"PSNR pass {len(per_pass)} − pass 1", spec=".2f", unit="dB")
        answer = ANSWERS.get(verdict, "no answer")
        parts.append(f"skip = {name}: PSNR {first:.2f} → {last:.2f} dB over {len(per_pass)} passes: {answer} "
                     f"({line})")
    if not parts:
        return "feeding the output back: not measured"
    return "feeding the denoised output back in: " + "; ".join(parts) + (
        f"; clean digits' mean intensity {clean_intensity:.3f}" if clean_intensity is not None else "")
