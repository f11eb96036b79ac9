"""``connlab ladder`` — Exercise 2: incremental denoising with T steps.

Trains the Exercise-1 U-Net to map rung t of the noise ladder to rung t−1
(``connlab.diffusion.ladder``), then runs the chain x̂_T -> x̂_{T−1} -> … -> x̂_0 with
x̂_{t−1} = sigmoid(net(x̂_t, t)) and writes the run folder:

    summary.json       chain_psnr / chain_bce (T+1 numbers: x_T, then after each step),
                       ladder_psnr (the true rungs), from-noise statistics, train time,
                       materialize cost; per variant and, with --sweep, per T; "evidence":
                       the claim's comparisons over the test digits (``Evidence.as_dict()``)
                       for the trained chain and, with 2+ epochs, for the chain after epoch 1
    chain.png          test digits in columns: x_T, the outputs T−1 … 0, the clean digit
    from_noise.png     the same chain started from uniform random pixels
    chain_psnr.png     PSNR against the clean digit along the chain, every variant
    sweep.md           with --sweep: one row per (T, condition)
    variants/T<T>-<condition>/   metrics.jsonl, model.safetensors, checkpoints/, figures

An epoch is one pair (x_t, x_{t−1}) per training image with t uniform in 1 … T, fresh
noise each epoch; the notebook's epoch over N × T stored pairs is T of these.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connlab.diffusion.ladder import SCHEDULES
from connlab.experiments.common import (DataSettings, TrainingSettings, add_training_command, nonnegative_float,
                                        positive_int)
from connlab.experiments.config import flag
from connlab.experiments.section import (NOT_MEASURED, NOT_SUPPORTED, SUPPORTED, Run, Section, Table, fmt, get, num,
                                         with_figures)

if TYPE_CHECKING:
    from connlab.diffusion.sidebyside import Ladder

CONDITION_CHOICES = ("none", "learned", "sinusoidal", "all")
EVAL_SEED = 1234    # the noised test digits and the random starts are the same for every variant
EVAL_IMAGES = 500   # default number of test digits the chain is measured on
SHOWN = 10          # columns in the figures


def step_list(text: str) -> tuple[int, ...]:
    steps = tuple(dict.fromkeys(positive_int(part.strip()) for part in text.split(",") if part.strip()))
    if not steps:
        raise argparse.ArgumentTypeError(f"{text!r} holds no step counts")
    return steps


@dataclass(frozen=True)
class LadderExperiment(TrainingSettings, DataSettings):
    steps: int = flag(10, "T, rungs of the ladder (steps2use)", type=positive_int)
    dist: str = flag("norm", "noise distribution (dist2try)", choices=("norm", "uniform"))
    mag: float = flag(1.0, "noise magnitude (mag2use)", type=nonnegative_float)
    schedule: str = flag("notebook", "how noise grows with t: notebook (x_t = x_{t-1} + mag/T z), ve, vp",
                         choices=SCHEDULES)
    condition: str = flag("none", "tell the network t: none (the notebook), learned, sinusoidal, all (compare)",
                          choices=CONDITION_CHOICES)
    sweep: tuple[int, ...] = flag((), "train one model per T and tabulate quality and time, e.g. 1,5,10,20",
                                  type=step_list, metavar="T1,T2,...", show_default=False)
    materialize: bool = flag(False, "store the N x (T+1) ladder like the notebook (one fixed noise draw, "
                                    "(T+1)*N*3136 bytes)")
    eval_images: int = flag(EVAL_IMAGES, "test digits the chain is measured on", type=positive_int)
    epochs: int = 2

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, LadderExperiment, "ladder", run_experiment, lambda summary, cfg: format_table(summary),
                         config=config_from_args)


def config_from_args(args: argparse.Namespace) -> LadderExperiment:
    from connlab.diffusion.ladder import LadderSchedule
    from connlab.experiments.common import from_flags

    cfg = LadderExperiment.from_args(args)
    for T in cfg.step_counts:  # reject bad values before a run folder exists
        from_flags(LadderSchedule, cfg.schedule, T, cfg.mag, cfg.dist)
    if cfg.materialize:  # the largest training set the data set can give, since it is not loaded yet
        check_materialize(min(cfg.limit or 60_000, 9_000 if cfg.dataset == "mnist-embedded" else 60_000), cfg)
    return cfg


def check_materialize(n: int, cfg: LadderExperiment) -> None:
    """``--materialize`` stores (T+1) x N images: refuse, as one line, a stack the device cannot hold."""
    from connlab.diffusion.ladder import materialize_bytes
    from connlab.runtime.memory import check_fits
    from connlab.train import pick_device

    T = max(cfg.step_counts)
    check_fits(materialize_bytes(n, T), pick_device(cfg.device), f"--materialize with T = {T} and {n:,} digits",
               "lower --steps or --limit, or drop --materialize (the ladder is then drawn per batch)")




def run_experiment(cfg: LadderExperiment, out: Path, resume: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    from connlab import plots
    from connlab.checkpoint import atomic_write_bytes, atomic_write_text
    from connlab.data import stratified_first, to_unit
    from connlab.data.global_batch import batch_rows, own_rows
    from connlab.runtime.distributed import is_main
    from connlab.diffusion.ladder import (LadderSchedule, full_ladder, ladder_pair, materialize, materialize_bytes,
                                         run_chain)
    from connlab.models.autoencoder import count_parameters
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
    from connlab.experiments.variants import load_images, train_variant
    from connlab.measures import chain_psnr
    from connlab.runs import write_summary

    device, data = load_images(cfg)
    train = data.train_images
    n = len(train)
    # test sets are sorted by class: take the first digits of every class, in proportion
    keep = torch.from_numpy(stratified_first(data.test_labels.cpu().numpy(), cfg.eval_images)).to(device)
    clean_test = to_unit(data.test_images[keep])
    starts = torch.rand(clean_test.shape, device=device,  # "completely random" images: U(0, 1) pixels
                        generator=torch.Generator(device=device).manual_seed(EVAL_SEED + 1))

    variants: dict[str, dict] = {}
    for T in cfg.step_counts:
        schedule = LadderSchedule(cfg.schedule, T, cfg.mag, cfg.dist)
        test_ladder = full_ladder(clean_test, schedule, torch.Generator(device=device).manual_seed(EVAL_SEED))
        stored = None
        if cfg.materialize:
            check_materialize(len(train), cfg)
            stored = materialize(to_unit(train), schedule, torch.Generator(device=device).manual_seed(cfg.seed))

        def loss_fn(model, batch, generator, schedule=schedule, stored=stored, T=T):
            (i,) = batch
            # under torchrun: every rank draws the global batch's t and walks its highest rung
            t_all = torch.randint(1, T + 1, (batch_rows(len(i)),), device=i.device, generator=generator)
            t = own_rows(t_all)
            if stored is None:
                x_t, x_prev = ladder_pair(to_unit(train[i]), t, schedule, generator, top=int(t_all.max()))
            else:
                x_t, x_prev = stored[t, i], stored[t - 1, i]
            return F.binary_cross_entropy_with_logits(model(x_t, t).float(), x_prev)

        for condition in cfg.conditions:
            name = f"T{T}-{condition}"
            model_cfg = StepConditionConfig(condition, T)
            # The under-trained denoiser, shown next to the working one: the chain of the model after its
            # first epoch, measured on the same test digits at that epoch's end (no extra training).
            evaluated: list = []   # per-digit chain PSNRs, one per epoch evaluated in this process

            def evaluate(model, T=T, test_top=test_ladder[T], evaluated=evaluated):
                per_digit = chain_psnr(torch.stack(run_chain(model, test_top, T)), clean_test)
                evaluated.append(per_digit)
                return {"chain_final_psnr": per_digit[-1].mean().item()}

            model, result = train_variant(cfg, out, name, lambda: StepConditionedUNet(model_cfg), loss_fn,
                                          (torch.arange(n, device=device),), device, model_config=asdict(model_cfg),
                                          evaluate=evaluate, resume=resume)
            folder = out / "variants" / name
            with torch.no_grad():
                chain = run_chain(model, test_ladder[T], T)
                noise_chain = run_chain(model, starts, T)
            claim = {"trained": evidence_dict(chain_psnr(torch.stack(chain), clean_test), cfg.epochs)}
            # the first evaluation was epoch 1 only when this process trained from the start
            # (a resumed run evaluates its remaining epochs only; its early chain is not measured)
            if cfg.epochs > 1 and evaluated and len(result.history) - len(evaluated) == 0:
                claim["early"] = evidence_dict(evaluated[0], 1)
            entry = {
                "steps": T, "condition": condition, "params": count_parameters(model),
                "train_seconds": result.train_seconds, "train_images_per_second": result.train_images_per_second,
                "final_train_loss": result.final_train_loss,
                **chain_scores(chain, clean_test),
                "ladder_psnr": [psnr(x, clean_test) for x in test_ladder.flip(0)],
                "from_noise": noise_stats(noise_chain, clean_test),
                "evidence": claim,
            }
            variants[name] = entry
            title = f"T={T}, {cfg.schedule}, {cfg.dist} mag {cfg.mag}, condition {condition}, {cfg.epochs} epochs"
            chain_figure(chain, clean_test, folder / "chain.png", title)
            chain_figure(noise_chain, None, folder / "from_noise.png", f"from U(0,1) noise — {title}")

    shown = {k: v for k, v in variants.items() if v["steps"] == cfg.shown_steps}
    first = next(iter(shown))
    for fig in ("chain.png", "from_noise.png") if is_main() else ():  # rank 0 wrote the variants' figures
        atomic_write_bytes(out / fig, (out / "variants" / first / fig).read_bytes())
    T = cfg.shown_steps
    k = list(range(T + 1))  # denoising steps applied: k = 0 is x_T, k = T is x̂_0
    series = {f"{name}: chain x̂_(T-k)": (k, e["chain_psnr"]) for name, e in shown.items()}
    series["true ladder x_(T-k)"] = (k, shown[first]["ladder_psnr"])
    for name, e in shown.items():
        if "early" in e["evidence"]:
            series[f"{name} after epoch 1 (under-trained)"] = (k, e["evidence"]["early"]["mean_psnr"])
    plots.curves(series, out / "chain_psnr.png", f"denoising steps applied k (x_{T} -> x_0)", "PSNR vs clean (dB)",
                 f"{cfg.schedule} ladder, {cfg.dist} mag {cfg.mag}, {cfg.epochs} epochs",
                 styles={"true ladder x_(T-k)": "--x"})
    summary = {
        "experiment": "ladder", "dataset": data.name, "data_source": data.source, "device": str(device),
        "train_images": n, "eval_images": len(clean_test), "schedule": cfg.schedule, "dist": cfg.dist,
        "mag": cfg.mag, "steps": T, "epochs": cfg.epochs, "materialized": cfg.materialize,
        "noise_std_per_step": LadderSchedule(cfg.schedule, T, cfg.mag, cfg.dist).noise_std(),
        "materialize_cost": {"bytes": materialize_bytes(n, T), "shape": [T + 1, n, 1, 28, 28],
                             "full_mnist_bytes": materialize_bytes(60_000, T)},
        "shown_variant": first,
        "chain_psnr": variants[first]["chain_psnr"], "chain_bce": variants[first]["chain_bce"],
        "train_seconds": variants[first]["train_seconds"],
        "psnr_rises_in_steps": variants[first]["psnr_rises_in_steps"],
        "evidence": variants[first]["evidence"],
        "variants": variants,
    }
    if cfg.sweep:
        table = format_table(summary)
        summary["sweep"] = [{k: e[k] for k in ("steps", "condition", "params", "train_seconds", "final_psnr",
                                                "start_psnr", "final_bce")} for e in variants.values()]
        atomic_write_text(out / "sweep.md", table + "\n")
    write_summary(out, summary)
    return summary


def load_ladder(run: Path, variant: str | None, device) -> Ladder:
    """A finished ladder run's model (``variant``, or the one its figures show); a UserError otherwise."""
    import json
    from dataclasses import asdict

    from connlab.checkpoint import load_weights, model_signature
    from connlab.diffusion.sidebyside import Ladder
    from connlab.errors import UserError
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
    from connlab.runs import read_run

    run = Path(run)
    saved = read_run(run, "ladder", flag="--ladder-run").saved
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"--ladder-run {run}: no readable summary.json — its training did not finish") from None
    variants = summary.get("variants") or {}
    name = variant or summary.get("shown_variant")
    if name not in variants:
        raise UserError(f"--ladder-variant {name!r}: {run} holds {', '.join(variants) or 'no variants'}")
    entry = variants[name]
    model_cfg = StepConditionConfig(entry["condition"], entry["steps"])
    model = StepConditionedUNet(model_cfg)
    weights = run / "variants" / name / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"--ladder-run {run}: no {weights.relative_to(run)} — the ladder training did not finish")
    load_weights(model, weights, model_signature(model, asdict(model_cfg)))
    return Ladder(model.to(device).eval(), name, entry["steps"], run, saved.get("config", {}))


def evidence_dict(per_digit, epochs: int) -> dict:
    """``chain_psnr_evidence`` of (T + 1, digits) PSNRs, as JSON for summary.json."""
    from connlab.measures import chain_psnr_evidence

    ev = chain_psnr_evidence(per_digit)
    return {"epochs": epochs, "mean_psnr": ev["mean_psnr"], "best_step": ev["best_step"],
            **{k: ev[k].as_dict() for k in ("gain", "best_gain", "drift")}}


def psnr(x, clean) -> float:
    from connlab.metrics import psnr_per_image

    return psnr_per_image(x.clamp(0, 1), clean).mean().item()


def chain_scores(chain, clean) -> dict:
    from connlab.metrics import bce as mean_bce

    ps = [psnr(x, clean) for x in chain]
    bce = [mean_bce(x.clamp(0, 1), clean).item() for x in chain]
    rises = sum(b > a for a, b in zip(ps, ps[1:]))
    return {"chain_psnr": ps, "chain_bce": bce, "start_psnr": ps[0], "final_psnr": ps[-1], "final_bce": bce[-1],
            "psnr_rises_in_steps": f"{rises}/{len(ps) - 1}"}


def noise_stats(chain, clean) -> dict:
    """What the chain makes of U(0,1) pixels: brightness, contrast and ink per step vs real digits."""
    def stats(x):
        return {"mean": x.mean().item(), "pixel_std": x.std().item(), "ink_fraction": (x > 0.5).float().mean().item()}

    return {"start": "uniform U(0,1) pixels", "per_step": [stats(x) for x in chain], "real_digits": stats(clean),
            "final_spread_across_starts": chain[-1].std(0).mean().item()}


def chain_figure(chain, clean, path: Path, title: str) -> None:
    import torch

    from connlab import plots

    T = len(chain) - 1
    cols = torch.linspace(0, len(chain[0]) - 1, SHOWN).long()  # spread over the (class-sorted) eval set
    rows = [(f"x_{T} input", chain[0][cols])]
    rows += [(f"out t={T - k}", x[cols]) for k, x in enumerate(chain[1:], start=1)]
    if clean is not None:
        rows.append(("clean", clean[cols]))
    plots.image_rows(rows, path, title)


def format_table(summary: dict) -> str:
    lines = ["| T | condition | params | PSNR x_T (dB) | PSNR x̂_0 (dB) | BCE x̂_0 | PSNR rises | train s | img/s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in summary["variants"].values():
        lines.append(f"| {e['steps']} | {e['condition']} | {e['params']:,} | {e['start_psnr']:.2f} | "
                     f"{e['final_psnr']:.2f} | {e['final_bce']:.4f} | {e['psnr_rises_in_steps']} | "
                     f"{e['train_seconds']:.1f} | {e['train_images_per_second']:.0f} |")
    return "\n".join(lines)


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

CLAIM_RULE = ("gain = PSNR of x̂_0 − PSNR of x_T per test digit (paired by digit), 95 % t interval above 0; "
              "and the end no worse than the chain's best step (drift = x̂_0 − best step; an interval below 0 "
              "means the chain walks away from the digit, which makes the claim only partly supported)")


def chain_line(ev: dict, label: str) -> str:
    """One chain's numbers for the page: PSNR along it, its gain and its drift, with intervals."""
    from connlab.experiments.section import effect_text, stored

    means = [v for v in get(ev, "mean_psnr", default=[]) or [] if isinstance(v, (int, float))]
    path = " → ".join(f"{v:.1f}" for v in means)
    best = get(ev, "best_step", default=None)
    line = f"{label}: PSNR {path} dB; {effect_text(stored(ev, 'gain'), 'gain', '.2f', 'dB')}"
    if isinstance(best, int) and best == len(means) - 1:
        return line + "; best at the last step (no drift)"
    return (line + f"; best at step {best}; {effect_text(stored(ev, 'drift'), 'drift after it', '.2f', 'dB')} "
            f"({get(ev, 'drift', 'verdict', default=NOT_MEASURED)})")


def section(run: Run) -> Section:
    from connlab.evidence import CONTRADICTED
    from connlab.experiments.section import NO_INTERVALS, effect_text, stored
    from connlab.experiments.section import PARTLY

    s = run.summary
    chain = [v for v in get(s, "chain_psnr", default=[]) or [] if isinstance(v, (int, float))]
    rows = []
    for name, e in (get(s, "variants", default={}) or {}).items():
        rows.append([name, fmt(num(e, "start_psnr"), ".2f"), fmt(num(e, "final_psnr"), ".2f"),
                     str(get(e, "psnr_rises_in_steps", default=NOT_MEASURED)), fmt(num(e, "train_seconds"), ".0f"),
                     fmt(num(e, "from_noise", "per_step", -1, "ink_fraction"), ".1%"),
                     fmt(num(e, "from_noise", "real_digits", "ink_fraction"), ".1%")])
    trained, early = get(s, "evidence", "trained"), get(s, "evidence", "early")
    gain, drift = stored(trained, "gain"), stored(trained, "drift")
    notes = []
    if gain is None:
        verdict = NOT_MEASURED
        text = (f"PSNR along the chain {' → '.join(f'{v:.2f}' for v in chain)} dB; {NO_INTERVALS}" if chain
                else "the chain's PSNR was not measured")
    else:
        verdict = gain.verdict
        text = chain_line(trained, f"trained {get(trained, 'epochs', default='?')} epoch(s)")
        if gain.verdict == SUPPORTED and drift is not None and drift.verdict == CONTRADICTED:
            verdict = PARTLY
            text += " — the chain rises, then walks away from the digit after its best step"
    if isinstance(early, dict):
        notes.append("Next to it, the same denoiser after its first epoch (under-trained), on the same digits — "
                     + chain_line(early, "after epoch 1")
                     + (". Applied T times, an under-trained one-step denoiser walks away from the digit: each "
                        "step's error is the next step's input."
                        if get(early, "drift", "verdict") == CONTRADICTED else "."))
    sec = Section("ladder", "Incremental denoising with T steps",
                  "A network trained to undo one small step of noise, applied T times, walks a noised digit back "
                  "towards the clean one: PSNR rises along the chain.", verdict, text, notes=notes,
                  tables=[Table(["variant", "PSNR x_T (dB)", "PSNR x̂_0 (dB)", "PSNR rises", "train s",
                                 "ink from noise", "ink, real digits"], rows,
                                f"{get(s, 'eval_images', default='?')} test digits; {get(s, 'schedule')} schedule, "
                                f"{get(s, 'dist')} noise, magnitude {get(s, 'mag')}")],
                  rule=CLAIM_RULE, effect=effect_text(gain, "PSNR gain", ".2f", "dB"))
    if chain:
        sec.tables.append(Table(["step k"] + [str(k) for k in range(len(chain))],
                                [["PSNR (dB)"] + [f"{v:.2f}" for v in chain]], "PSNR along the chain, k steps applied"))
    return with_figures(sec, run, ("chain.png", "chain_psnr.png", "from_noise.png"))
