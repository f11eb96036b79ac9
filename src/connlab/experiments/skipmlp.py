"""``connlab skipmlp`` — an MLP with and without the input carried forward.

The lecture: "carry the input forward; concatenate any earlier layer". Two classifiers of
flattened 28x28 digits with the same hidden layers:

    plain   x -> relu(W1 x) -> relu(W2 h1) -> ... -> linear head
    skip    ``ConcatSkip``: every hidden layer sees [x, h1, ..., h_{i-1}] and the head sees
            [x, h1, ..., h_L] — the input (and every earlier layer) carried forward by
            concatenation (DenseNet style, Huang et al. 2017)

Both train with the same budget through ``connlab.train.fit`` for ``--seeds`` seeds. The
run folder: summary.json (final test accuracy, mean ± std over seeds, params), curves.png
(training loss and test accuracy per epoch), variants/<kind>-seed<s>/.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from connlab.data import to_unit
from connlab.evidence import compare
from connlab.experiments.common import DataSettings, TrainingSettings, add_training_command, positive_int
from connlab.experiments.config import flag
from connlab.experiments.section import (INCONCLUSIVE, Run, Section, Table, effect_of, evidence_line, fmt, get, num,
                                         pct, pm, stored, with_figures)
from connlab.experiments.sentence import Wording, measured, sentence
from connlab.experiments.variants import classification_loss, load_images, mean_spread, over_seeds, train_variant
from connlab.models.mlp import make_mlp as make
from connlab.plots import finish_axes, pyplot, save_figure
from connlab.runs import write_summary

KINDS = ("plain", "skip")
LEARNED = 0.5  # test accuracy both models must pass for the comparison to mean anything
RULE = ("compare(test accuracy[plain], test accuracy[skip], better='higher'), paired by seed (same data order), "
        "95 % t interval; supported when the interval lies above 0")


@dataclass(frozen=True)
class SkipMLPExperiment(TrainingSettings, DataSettings):
    hidden: int = flag(32, "units per hidden layer", type=positive_int, aliases=("--width",))
    layers: int = flag(2, "hidden layers", type=positive_int)
    seeds: int = flag(2, "repeat each variant with K seeds", type=positive_int)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, SkipMLPExperiment, "skipmlp", run_experiment, describe)


def describe(summary: dict, cfg: SkipMLPExperiment) -> str:
    lines = [f"{kind:6s} params {e['params']:7,d}  test accuracy {100 * e['test_accuracy']:.2f}% "
             f"± {100 * e['test_accuracy_std']:.2f}  (final train loss {e['final_train_loss']:.4f})"
             for kind, e in summary["variants"].items()]
    return "\n".join(lines + [summary["verdict"]])


def make_mlp(kind: str, hidden: int, layers: int):
    """(B, 1, 28, 28) -> logits (B, 10): the network of ``connlab.models.mlp`` (imported when used)."""
    return make(kind, hidden, layers)


def run_experiment(cfg: SkipMLPExperiment, out: Path, resume: bool = False) -> dict:
    device, data = load_images(cfg)

    loss_fn = classification_loss

    def evaluate(model):
        logits = torch.cat([model(to_unit(chunk)).float() for chunk in data.test_images.split(1000)])
        return {"test_accuracy": (logits.argmax(dim=1) == data.test_labels).float().mean().item()}

    params = {}

    def train_one(kind: str, seed: int) -> dict:
        model, result = train_variant(cfg, out, f"{kind}-seed{seed}", lambda: make_mlp(kind, cfg.hidden, cfg.layers),
                                      loss_fn, (data.train_images, data.train_labels), device,
                                      model_config={"kind": kind, "hidden": cfg.hidden, "layers": cfg.layers},
                                      seed=seed, evaluate=evaluate, resume=resume, label=f"{kind} seed {seed}")
        params[kind] = sum(p.numel() for p in model.parameters())
        return {"seed": seed, "test_accuracy": result.history[-1]["test_accuracy"],
                "final_train_loss": result.final_train_loss, "train_seconds": result.train_seconds,
                "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_accuracy": h["test_accuracy"]}
                            for h in result.history]}

    runs = over_seeds(KINDS, range(cfg.seed, cfg.seed + cfg.seeds), train_one)
    variants = {kind: {"params": params[kind], **mean_spread(per_seed, ("test_accuracy", "final_train_loss")),
                       "seeds": per_seed} for kind, per_seed in runs.items()}
    summary = {"experiment": "skipmlp", "dataset": data.name, "data_source": data.source, "device": str(device),
               "train_images": len(data.train_images), "test_images": len(data.test_images),
               "hidden": cfg.hidden, "layers": cfg.layers, "epochs": cfg.epochs, "seeds": cfg.seeds,
               "variants": variants, "evidence": {"accuracy": accuracy_evidence(variants).as_dict()}}
    summary["verdict"] = ": ".join(verdict(summary))
    write_summary(out, summary)
    curves_figure(summary, out)
    return summary


def accuracy_evidence(variants: dict):
    """The claim's comparison: the skip net's test accuracy minus the plain net's, paired by seed."""
    return compare([r["test_accuracy"] for r in variants["plain"]["seeds"]],
                   [r["test_accuracy"] for r in variants["skip"]["seeds"]], better="higher")


def verdict(summary: dict) -> tuple[str, str]:
    """The claim's rule (``RULE``) on the stored comparison; inconclusive while both models stay below ``LEARNED``."""
    verdict_, text = evidence_line(get(summary, "evidence", "accuracy"), RULE, "test accuracy")
    accs = [num(summary, "variants", k, "test_accuracy") for k in KINDS]
    if all(a is not None for a in accs) and max(accs) < LEARNED:
        verdict_, text = INCONCLUSIVE, text + f"; both models stay below {LEARNED:.0%} accuracy"
    return verdict_, text


def curves_figure(summary: dict, out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind, style in (("plain", "--"), ("skip", "-")):
        for r in summary["variants"][kind]["seeds"]:
            epochs = [h["epoch"] for h in r["history"]]
            label = f"{'without' if kind == 'plain' else 'with'} input carried forward, seed {r['seed']}"
            axes[0].plot(epochs, [h["train_loss"] for h in r["history"]], style, marker="o", markersize=3, label=label)
            axes[1].plot(epochs, [100 * h["test_accuracy"] for h in r["history"]], style, marker="o", markersize=3,
                         label=label)
    finish_axes(axes[0], "epoch", "training loss (cross-entropy)", logy=True, legend=7)
    finish_axes(axes[1], "epoch", "test accuracy (%)", legend=7)
    fig.suptitle(f"MLP, {summary['layers']} hidden layers of {summary['hidden']}, {summary['dataset']} "
                 f"({summary['train_images']} training images)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "curves.png", dpi=90)


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

def section(run: Run) -> Section:
    s = run.summary
    seeds = get(s, "seeds")
    rows = []
    for kind in KINDS:
        rows.append([{"plain": "without carried input", "skip": "input carried forward (concat)"}[kind],
                     fmt(num(s, "variants", kind, "params"), ",.0f"),
                     pm(pct(num(s, "variants", kind, "test_accuracy")),
                        pct(num(s, "variants", kind, "test_accuracy_std")), ".2f"),
                     pm(num(s, "variants", kind, "final_train_loss"), num(s, "variants", kind, "final_train_loss_std"))])
    verdict_, text = verdict(s)
    return with_figures(Section("skipmlp", "Carrying the input forward",
                                "Concatenating the input (and every earlier layer) into later layers helps an MLP "
                                "classify digits.", verdict_, text,
                                tables=[Table(["model", "params", "test accuracy (%)", "final train loss"], rows,
                                              f"mean ± std over {seeds} seed(s)")],
                                rule=RULE,
                                effect=effect_of(get(s, "evidence", "accuracy"), "skip − plain test accuracy"),
                                sentence=plain_sentence(s, verdict_)),
                        run, {"curves.png": "Training loss (left, log scale) and test accuracy (right) per epoch, "
                                            "each seed, with and without the input carried forward."})


def plain_sentence(summary: dict, verdict_: str) -> str:
    """The verdict in one plain sentence (``connlab.experiments.sentence``)."""
    if verdict_ == INCONCLUSIVE:
        return (f"Both MLPs stay below {LEARNED:.0%} test accuracy, so carrying the input forward cannot be "
                "judged: inconclusive at this budget.")
    return sentence(verdict_, [measured(stored(summary, "evidence", "accuracy"), Wording(
        "carrying the input forward makes the test accuracy", "higher", "lower",
        "whether carrying the input forward raises the test accuracy", " percentage points", ".1f", 100))])
