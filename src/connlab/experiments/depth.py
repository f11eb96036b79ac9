"""``connlab depth`` — "can we keep adding layers?": plain vs residual networks as depth grows.

He et al. (2015, Fig. 1): a deeper *plain* network trains to a *higher* training error than
a shallower one (the degradation problem — not overfitting, since it is the training error),
while the same network with residual connections keeps improving with depth.

For each depth (number of blocks; see ``connlab.models.resnet``) a plain net and a residual
net — the same layers, widths and training budget — are trained with ``connlab.train.fit``,
then scored. The run folder:

    summary.json    per depth and kind: final training loss, training and test error, params;
                    the verdict: did the deepest residual net reach a lower training loss
                    than the deepest plain net?
    depth.png       final training loss and test error vs depth, plain and residual
    curves.png      training loss per epoch, every model
    variants/<kind>-d<depth>/   metrics.jsonl, model.safetensors, checkpoints/
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from connlab.experiments.common import DataSettings, TrainingSettings, add_training_command, int_list, positive_int
from connlab.experiments.config import flag
from connlab.experiments.section import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, UNKNOWN, Run, Section, Table,
                                         fmt, get, num, pct, with_figures)

DEFAULT_DEPTHS = (2, 8, 20)
FULL_DEPTHS = (2, 8, 20, 32, 56)
DEFAULT_LIMIT = 2000       # training images by default on a CPU; --full uses the whole set
TRAIN_EVAL_SIZE = 2000     # training images re-scored in eval mode at the end
KINDS = ("plain", "residual")
LEARNED = 0.9 * math.log(10)  # a net whose training loss stays above 0.9 x a uniform guess's (ln 10) learned nothing


depth_list = int_list(1, "depths (numbers of blocks)")


@dataclass(frozen=True)
class DepthExperiment(TrainingSettings, DataSettings):
    PRESETS = {"full": dict(depths=FULL_DEPTHS, limit=None)}   # the deep sweep on the whole training set
    PRESET_FIELD = "full"

    depths: tuple[int, ...] = flag(DEFAULT_DEPTHS, "numbers of blocks, each two 3x3 convs", type=depth_list)
    width: int = flag(8, "channels of the first stage", type=positive_int)
    full: bool = flag(False, "the deep sweep on the whole training set (for a GPU)")
    epochs: int = 3
    batch_size: int = 64
    limit: int | None = DEFAULT_LIMIT


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, DepthExperiment, "depth", run_experiment, describe)


def describe(summary: dict, cfg: DepthExperiment) -> str:
    return format_table(summary) + "\n" + summary["verdict"]


def run_experiment(cfg: DepthExperiment, out: Path, resume: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    from connlab.data import to_unit
    from connlab.models.resnet import ResNet, ResNetConfig
    from connlab.experiments.variants import classification_loss, load_images, train_variant
    from connlab.runs import write_summary

    device, data = load_images(cfg)

    loss_fn = classification_loss

    def score(model, images, labels) -> dict:
        logits = torch.cat([model(to_unit(chunk)).float() for chunk in images.split(500)])
        return {"loss": F.cross_entropy(logits, labels).item(),
                "error": (logits.argmax(dim=1) != labels).float().mean().item()}

    def evaluate(model):
        return {"test_error": score(model, data.test_images, data.test_labels)["error"]}

    results: dict[str, dict[str, dict]] = {k: {} for k in KINDS}
    for depth in cfg.depths:
        for kind in KINDS:
            model_cfg = ResNetConfig(depth, cfg.width, residual=kind == "residual")
            model, result = train_variant(cfg, out, f"{kind}-d{depth}", lambda: ResNet(model_cfg), loss_fn,
                                          (data.train_images, data.train_labels), device,
                                          model_config=asdict(model_cfg), evaluate=evaluate, resume=resume,
                                          label=f"{kind} depth {depth}")
            with torch.no_grad():
                train_scores = score(model, data.train_images[:TRAIN_EVAL_SIZE], data.train_labels[:TRAIN_EVAL_SIZE])
                test_scores = score(model, data.test_images, data.test_labels)
            results[kind][str(depth)] = {
                "weighted_layers": model_cfg.weighted_layers, "params": sum(p.numel() for p in model.parameters()),
                "final_train_loss": result.final_train_loss,
                "train_loss_eval_mode": train_scores["loss"], "train_error_eval_mode": train_scores["error"],
                "test_loss": test_scores["loss"], "test_error": test_scores["error"],
                "train_seconds": result.train_seconds,
                "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_error": h["test_error"]}
                            for h in result.history],
            }

    summary = {
        "experiment": "depth", "dataset": data.name, "data_source": data.source, "device": str(device),
        "train_images": len(data.train_images), "test_images": len(data.test_images),
        "depth_means": "number of blocks (two 3x3 convs each); weighted layers = 2 * depth + 2",
        "depths": list(cfg.depths), "width": cfg.width, "epochs": cfg.epochs, "results": results,
        **verdict(results, cfg.depths),
    }
    write_summary(out, summary)
    depth_figure(summary, out)
    return summary


def verdict(results: dict, depths) -> dict:
    """The summary's verdict ("VERDICT: the numbers"): ``judge`` on the final training losses."""
    losses = {kind: {str(d): results[kind][str(d)]["final_train_loss"] for d in depths} for kind in KINDS}
    deepest = str(max(depths))
    return {"residual_beats_plain_at_deepest": losses["residual"][deepest] < losses["plain"][deepest],
            "verdict": ": ".join(judge(losses["plain"], losses["residual"]))}


def judge(plain: dict[str, float | None], residual: dict[str, float | None]) -> tuple[str, str]:
    """The claim's rule: the deepest residual net reaches a lower final training loss than the deepest
    plain net (inconclusive when neither learned); the text adds whether the plain net degrades with depth.

    ``plain`` and ``residual`` map depth (a str) to final training loss (None: not measured).
    """
    depths = sorted(set(plain) | set(residual), key=int)
    if not depths:
        return UNKNOWN, "the deepest plain or residual net was not measured"
    deepest = depths[-1]
    p, r = plain.get(deepest), residual.get(deepest)
    if p is None or r is None:
        return UNKNOWN, "the deepest plain or residual net was not measured"
    better = r < p
    verdict = SUPPORTED if better else NOT_SUPPORTED
    if min(r, p) > LEARNED:
        verdict = INCONCLUSIVE
    text = (f"depth {deepest} (blocks): residual final training loss {r:.4f} vs plain {p:.4f} — the residual net "
            + ("trained to a LOWER training loss" if better
               else "did NOT train to a lower training loss at this budget"))
    known = {d: v for d, v in plain.items() if v is not None}
    if len(known) > 1:
        best = min(known, key=known.get)
        text += (f"; the plain net degrades with depth (training loss {known[best]:.4f} at depth {best}, its best, "
                 f"-> {p:.4f} at depth {deepest})" if best != deepest
                 else f"; the plain net does not degrade with depth here (depth {deepest} is its best)")
    return verdict, text


def depth_figure(summary: dict, out: Path) -> None:
    from connlab.plots import finish_axes, pyplot, save_figure

    plt = pyplot()
    depths = summary["depths"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind, style in (("plain", "-o"), ("residual", "-s")):
        per = summary["results"][kind]
        axes[0].plot(depths, [per[str(d)]["final_train_loss"] for d in depths], style, label=f"{kind}")
        axes[1].plot(depths, [100 * per[str(d)]["test_error"] for d in depths], style, label=f"{kind}")
    axes[0].set_ylabel("training loss, last epoch (cross-entropy)")
    axes[1].set_ylabel("test error (%)")
    for ax in axes:
        ax.set_xticks(depths)
        finish_axes(ax, "depth (blocks; weighted layers = 2·depth + 2)", None, legend=10)
    fig.suptitle(f"plain vs residual, {summary['dataset']} ({summary['train_images']} training images), "
                 f"{summary['epochs']} epochs each, width {summary['width']}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "depth.png", dpi=90)

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, style in (("plain", "--"), ("residual", "-")):
        for d in depths:
            hist = summary["results"][kind][str(d)]["history"]
            ax.plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], style, marker="o", markersize=3,
                    label=f"{kind} depth {d}")
    finish_axes(ax, "epoch", "training loss", logy=True, legend=7)
    fig.tight_layout()
    save_figure(fig, out / "curves.png", dpi=90)


def format_table(summary: dict) -> str:
    lines = ["| depth (blocks) | layers | plain train loss | residual train loss | plain test err | residual test err |",
             "|---:|---:|---:|---:|---:|---:|"]
    for d in summary["depths"]:
        p, r = summary["results"]["plain"][str(d)], summary["results"]["residual"][str(d)]
        lines.append(f"| {d} | {p['weighted_layers']} | {p['final_train_loss']:.4f} | {r['final_train_loss']:.4f} | "
                     f"{100 * p['test_error']:.2f}% | {100 * r['test_error']:.2f}% |")
    return "\n".join(lines)


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

def section(run: Run) -> Section:
    s = run.summary
    depths = [str(d) for d in get(s, "depths", default=[]) or []]
    rows = []
    for d in depths:
        p, r = get(s, "results", "plain", d, default={}), get(s, "results", "residual", d, default={})
        rows.append([d, fmt(num(p, "weighted_layers"), ".0f"), fmt(num(p, "final_train_loss")),
                     fmt(num(r, "final_train_loss")), fmt(pct(num(p, "test_error")), ".2f"),
                     fmt(pct(num(r, "test_error")), ".2f")])
    verdict, text = judge(*({d: num(s, "results", kind, d, "final_train_loss") for d in depths} for kind in KINDS))
    sec = Section("depth", "Can we keep adding layers? Plain vs residual networks",
                  "Deeper plain networks train to a higher training loss (degradation); residual connections remove "
                  "that, so the deepest residual net trains better than the deepest plain one.", verdict, text,
                  tables=[Table(["depth (blocks)", "layers", "plain train loss", "residual train loss",
                                 "plain test error (%)", "residual test error (%)"], rows,
                                f"{get(s, 'train_images', default='?')} training images, {get(s, 'epochs')} epochs")])
    return with_figures(sec, run, ("depth.png", "curves.png"))
