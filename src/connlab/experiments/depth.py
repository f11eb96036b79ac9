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
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from connlab.experiments.common import TrainingSettings

DEFAULT_DEPTHS = (2, 8, 20)
FULL_DEPTHS = (2, 8, 20, 32, 56)
DEFAULT_LIMIT = 2000       # training images by default on a CPU; --full uses the whole set
TRAIN_EVAL_SIZE = 2000     # training images re-scored in eval mode at the end
KINDS = ("plain", "residual")


@dataclass(frozen=True)
class DepthExperiment(TrainingSettings):
    depths: tuple[int, ...] = DEFAULT_DEPTHS
    width: int = 8
    epochs: int = 3
    batch_size: int = 64
    limit: int | None = DEFAULT_LIMIT


def depth_list(text: str) -> tuple[int, ...]:
    """``2,8,20`` -> (2, 8, 20); every depth must be >= 1 block."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one depth")
    bad = [v for v in values if v < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"depths (numbers of blocks) must be >= 1, got {bad[0]}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    from connlab.experiments.common import add_common, positive_int

    p.add_argument("--depths", type=depth_list, default=None,
                   help=f"numbers of blocks, each two 3x3 convs (default {','.join(map(str, DEFAULT_DEPTHS))}; "
                        f"--full: {','.join(map(str, FULL_DEPTHS))})")
    p.add_argument("--width", type=positive_int, default=8, help="channels of the first stage (default 8)")
    p.add_argument("--full", action="store_true", help="the deep sweep on the whole training set (for a GPU)")
    add_common(p, epochs=3, batch_size=64)
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> DepthExperiment:
    return DepthExperiment.from_args(
        args, depths=args.depths or (FULL_DEPTHS if args.full else DEFAULT_DEPTHS), width=args.width,
        limit=args.limit or (None if args.full else DEFAULT_LIMIT))


def run(args: argparse.Namespace) -> int:
    from connlab.runs import prepare_run

    out, cfg = prepare_run(args.out, "depth", config_from_args(args), args.resume)
    summary = run_experiment(cfg, out, resume=args.resume)
    print(format_table(summary))
    print(summary["verdict"])
    print(f"run folder: {out}", file=sys.stderr)
    return 0


def run_experiment(cfg: DepthExperiment, out: Path, resume: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    from connlab.data import load_dataset, to_unit
    from connlab.models.resnet import ResNet, ResNetConfig
    from connlab.runs import write_summary
    from connlab.train import fit, pick_device, seed_everything

    device = pick_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)

    def loss_fn(model, batch, generator):
        images, labels = batch
        return F.cross_entropy(model(to_unit(images)).float(), labels)

    def score(model, images, labels) -> dict:
        logits = torch.cat([model(to_unit(chunk)).float() for chunk in images.split(500)])
        return {"loss": F.cross_entropy(logits, labels).item(),
                "error": (logits.argmax(dim=1) != labels).float().mean().item()}

    def evaluate(model):
        return {"test_error": score(model, data.test_images, data.test_labels)["error"]}

    results: dict[str, dict[str, dict]] = {k: {} for k in KINDS}
    for depth in cfg.depths:
        for kind in KINDS:
            seed_everything(cfg.seed)
            model_cfg = ResNetConfig(depth, cfg.width, residual=kind == "residual")
            model = ResNet(model_cfg).to(device)
            train_cfg = cfg.train_config()
            folder = out / "variants" / f"{kind}-d{depth}"
            result = fit(model, loss_fn, (data.train_images, data.train_labels), train_cfg, folder,
                         model_config=asdict(model_cfg), evaluate=evaluate,
                         resume=resume and (folder / "checkpoints").is_dir(), label=f"{kind} depth {depth}")
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
    """Did the deepest residual net reach a lower final training loss than the deepest plain net?"""
    deepest, shallowest = str(max(depths)), str(min(depths))
    plain, res = results["plain"][deepest]["final_train_loss"], results["residual"][deepest]["final_train_loss"]
    better = res < plain
    text = (f"depth {deepest} ({results['plain'][deepest]['weighted_layers']} weighted layers): residual final "
            f"training loss {res:.4f} vs plain {plain:.4f} — the residual net "
            + ("trained to a LOWER training loss" if better else "did NOT train to a lower training loss at this budget"))
    if deepest != shallowest:
        losses = {d: results["plain"][str(d)]["final_train_loss"] for d in depths}
        best = min(losses, key=losses.get)
        text += (f"; the plain net degrades with depth (training loss {losses[best]:.4f} at depth {best}, its best, "
                 f"-> {plain:.4f} at depth {deepest})" if str(best) != deepest
                 else f"; the plain net does not degrade with depth here (depth {deepest} is its best)")
    return {"residual_beats_plain_at_deepest": better, "verdict": text}


def depth_figure(summary: dict, out: Path) -> None:
    from connlab.plots import pyplot

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
        ax.set_xlabel("depth (blocks; weighted layers = 2·depth + 2)")
        ax.set_xticks(depths)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"plain vs residual, {summary['dataset']} ({summary['train_images']} training images), "
                 f"{summary['epochs']} epochs each, width {summary['width']}", fontsize=10)
    fig.tight_layout()
    from connlab.plots import save_figure  # rank 0 only under torchrun

    save_figure(fig, out / "depth.png", dpi=90)

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, style in (("plain", "--"), ("residual", "-")):
        for d in depths:
            hist = summary["results"][kind][str(d)]["history"]
            ax.plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], style, marker="o", markersize=3,
                    label=f"{kind} depth {d}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    from connlab.plots import save_figure  # rank 0 only under torchrun

    save_figure(fig, out / "curves.png", dpi=90)


def format_table(summary: dict) -> str:
    lines = ["| depth (blocks) | layers | plain train loss | residual train loss | plain test err | residual test err |",
             "|---:|---:|---:|---:|---:|---:|"]
    for d in summary["depths"]:
        p, r = summary["results"]["plain"][str(d)], summary["results"]["residual"][str(d)]
        lines.append(f"| {d} | {p['weighted_layers']} | {p['final_train_loss']:.4f} | {r['final_train_loss']:.4f} | "
                     f"{100 * p['test_error']:.2f}% | {100 * r['test_error']:.2f}% |")
    return "\n".join(lines)
