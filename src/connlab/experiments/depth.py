"""``connlab depth`` — "can we keep adding layers?": plain vs residual networks as depth grows.

He et al. (2015, Fig. 1): a deeper *plain* network trains to a *higher* training error than
a shallower one (the degradation problem — not overfitting, since it is the training error),
while the same network with residual connections keeps improving with depth.

For each depth (number of blocks; see ``connlab.models.resnet``) a plain net and a residual
net — the same layers, widths and training budget — are trained with ``connlab.train.fit``,
then scored. ``--preset course`` runs the course's residual notebook instead, its network, data
and training exactly (``connlab.experiments.depth_course``, its own run folder; its section: ``depth_course_page``);
this module's sweep is the lab's larger setting beside it. The lab's run folder:

    summary.json    per depth and kind: final training loss, training and test error, params
                    (means over ``--seeds``, each seed's numbers under "seeds"); "evidence": the
                    claim's paired comparisons (``depth_claim.RULES``), which the verdict only reads
    depth.png       final training loss and test error vs depth, plain and residual
    curves.png      training loss per epoch, every model
    variants/<kind>-d<depth>[-seed<s>]/   metrics.jsonl, model.safetensors, checkpoints/ (-seed<s> when --seeds > 1)
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab.data import to_unit
from connlab.errors import UserError
from connlab.experiments.common import (DataSettings, TrainingSettings, add_training_command, int_list,
                                        nonnegative_int, positive_int)
from connlab.experiments.config import flag
from connlab.experiments import depth_course, depth_course_page
from connlab.experiments.depth_claim import KINDS, RULES, WHY_GAP_RULE, depth_evidence, judge, plain_sentence
from connlab.experiments.depth_course import COURSE_PRESET, loss_list
from connlab.experiments.section import Run, Section, Table, effect_of, fmt, get, num, pct, with_figures
from connlab.experiments.variants import classification_loss, load_images, train_variant
from connlab.models.resnet import ResNet, ResNetConfig
from connlab.plots import finish_axes, pyplot, save_figure
from connlab.runs import write_summary

DEFAULT_DEPTHS = (2, 8, 20)
FULL_DEPTHS = (2, 8, 20, 32, 56)
DEFAULT_LIMIT = 2000       # training images by default on a CPU; --full uses the whole set
TRAIN_EVAL_SIZE = 2000     # training images re-scored in eval mode at the end


depth_list = int_list(1, "depths (numbers of blocks)")


@dataclass(frozen=True)
class DepthExperiment(TrainingSettings, DataSettings):
    PRESETS = {"full": dict(depths=FULL_DEPTHS, limit=None),   # the deep sweep on the whole training set
               "course": COURSE_PRESET}                         # the course's residual notebook
    PRESET_FIELD = "preset"

    preset: str = flag("lab", "lab: the lab's sweep; full: the deep sweep on the whole training set (for a GPU, "
                              "also --full); course: the course's residual notebook, exactly (connlab.experiments."
                              "depth_course)", choices=("lab", "full", "course"))
    depths: tuple[int, ...] = flag(DEFAULT_DEPTHS, "numbers of blocks (lab: two 3x3 convs each; course: identity "
                                                   "blocks 1x1-3x3-1x1)", type=depth_list)
    width: int = flag(8, "channels of the first stage", type=positive_int)
    full: bool = flag(False, "the deep sweep on the whole training set (for a GPU): --preset full")
    seeds: int = flag(1, "repeat every net with K seeds (the verdicts need >= 2; the demo uses 5)",
                      type=positive_int)
    losses: tuple[str, ...] = flag(("cce",), "training losses, each a variant (course protocol only): cce "
                                             "(categorical cross-entropy), bce (binary cross-entropy on one-hot "
                                             "labels, the course's)", type=loss_list)
    patience: int = flag(0, "early stopping on the validation loss after N epochs without improvement, the last "
                            "weights kept (course protocol only; 0: off)", type=nonnegative_int)
    epochs: int = 3
    batch_size: int = 64
    limit: int | None = DEFAULT_LIMIT

    def __post_init__(self):
        if self.full and self.preset == "course":
            raise UserError("--full and --preset course are two presets: give one")
        # --full and --preset full are one preset; keep both fields saying so (config.json, --resume)
        object.__setattr__(self, "full", self.full or self.preset == "full")
        object.__setattr__(self, "preset", "full" if self.full else self.preset)
        if self.preset != "course":
            for name, default in (("losses", ("cce",)), ("patience", 0)):
                if getattr(self, name) != default:
                    raise UserError(f"--{name} belongs to the course protocol (--preset course); the lab's "
                                    f"sweep trains with cce and no early stopping")

    @classmethod
    def preset_overrides(cls, given: dict) -> dict:
        """``--full`` picks the full preset, as ``--preset full`` does."""
        if given.get("full") and given.get("preset", "full") == "full":
            given = {**given, "preset": "full"}
        return super().preset_overrides(given)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, DepthExperiment, "depth", run_experiment, describe)


def describe(summary: dict, cfg: DepthExperiment) -> str:
    if summary.get("protocol") == "course":
        return depth_course_page.describe(summary)
    return format_table(summary) + "\n" + summary["verdict"]


def run_experiment(cfg: DepthExperiment, out: Path, resume: bool = False) -> dict:
    if cfg.preset == "course":
        return depth_course.run_course(cfg, out, resume)
    device, data = load_images(cfg)
    results: dict[str, dict[str, dict]] = {k: {} for k in KINDS}
    for depth in cfg.depths:
        for kind in KINDS:
            results[kind][str(depth)] = train_over_seeds(cfg, out, resume, data, device, kind, depth)
    summary = build_summary(cfg, data, device, results)
    write_summary(out, summary)
    depth_figure(summary, out)
    return summary


def score(model, images, labels) -> dict:
    """Cross-entropy loss and error rate of a classifier on uint8 ``images`` (in chunks of 500)."""
    logits = torch.cat([model(to_unit(chunk)).float() for chunk in images.split(500)])
    return {"loss": F.cross_entropy(logits, labels).item(),
            "error": (logits.argmax(dim=1) != labels).float().mean().item()}


def train_over_seeds(cfg: DepthExperiment, out: Path, resume: bool, data, device, kind: str, depth: int) -> dict:
    """One net (plain or residual, one depth) over the seeds: means over seeds, the first seed's curve, every
    seed's numbers."""
    model_cfg = ResNetConfig(depth, cfg.width, residual=kind == "residual")

    def evaluate(model):
        return {"test_error": score(model, data.test_images, data.test_labels)["error"]}

    records = []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        # one seed keeps the folder names of runs made before --seeds existed (resume)
        name = f"{kind}-d{depth}" + (f"-seed{seed}" if cfg.seeds > 1 else "")
        model, result = train_variant(cfg, out, name, lambda: ResNet(model_cfg), classification_loss,
                                      (data.train_images, data.train_labels), device,
                                      model_config=asdict(model_cfg), seed=seed,
                                      # per-epoch test error for the first seed's curve only
                                      evaluate=evaluate if seed == cfg.seed else None,
                                      resume=resume, label=f"{kind} depth {depth} seed {seed}")
        records.append(seed_record(seed, model, result, data))
    return {"weighted_layers": model_cfg.weighted_layers, "params": sum(p.numel() for p in model.parameters()),
            **{k: sum(r[k] for r in records) / len(records)
               for k in ("final_train_loss", "train_loss_eval_mode", "train_error_eval_mode", "test_loss",
                         "test_error", "train_seconds")},
            "history": records[0]["history"],
            "seeds": [{k: v for k, v in r.items() if k != "history"} for r in records]}


def seed_record(seed: int, model, result, data) -> dict:
    """One trained net's numbers: its losses and errors in eval mode on training and test digits, its curve."""
    with torch.no_grad():
        train_scores = score(model, data.train_images[:TRAIN_EVAL_SIZE], data.train_labels[:TRAIN_EVAL_SIZE])
        test_scores = score(model, data.test_images, data.test_labels)
    return {"seed": seed, "final_train_loss": result.final_train_loss,
            "train_loss_eval_mode": train_scores["loss"], "train_error_eval_mode": train_scores["error"],
            "test_loss": test_scores["loss"], "test_error": test_scores["error"],
            "train_seconds": result.train_seconds,
            "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_error": h.get("test_error")}
                        for h in result.history]}


def build_summary(cfg: DepthExperiment, data, device, results: dict) -> dict:
    """summary.json: the setting, every net's numbers, the claim's comparisons and the verdict."""
    deepest = str(max(cfg.depths))
    summary = {
        "experiment": "depth", "dataset": data.name, "data_source": data.source, "device": str(device),
        "train_images": len(data.train_images), "test_images": len(data.test_images),
        "depth_means": "number of blocks (two 3x3 convs each); weighted layers = 2 * depth + 2",
        "depths": list(cfg.depths), "width": cfg.width, "epochs": cfg.epochs, "seeds": cfg.seeds,
        "results": results, "evidence": depth_evidence(results, cfg.depths),
        "residual_beats_plain_at_deepest": (results["residual"][deepest]["final_train_loss"]
                                            < results["plain"][deepest]["final_train_loss"]),
    }
    summary["verdict"] = ": ".join(judge(summary))
    return summary


def depth_figure(summary: dict, out: Path) -> None:
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
    """The lab's sweep; a run of ``--preset course`` has the course's section (``depth_course_page.section``)."""
    s = run.summary
    if get(s, "protocol") == "course":
        return depth_course_page.section(run)
    depths = [str(d) for d in get(s, "depths", default=[]) or []]
    rows = []
    for d in depths:
        p, r = get(s, "results", "plain", d, default={}), get(s, "results", "residual", d, default={})
        rows.append([d, fmt(num(p, "weighted_layers"), ".0f"), fmt(num(p, "final_train_loss")),
                     fmt(num(r, "final_train_loss")), fmt(pct(num(p, "test_error")), ".2f"),
                     fmt(pct(num(r, "test_error")), ".2f")])
    verdict, text = judge(s)
    sec = Section("depth", "Can we keep adding layers? Plain vs residual networks",
                  "Deeper plain networks train to a higher training loss (degradation); residual connections remove "
                  "that.", verdict, text,
                  tables=[Table(["depth (blocks)", "layers", "plain train loss", "residual train loss",
                                 "plain test error (%)", "residual test error (%)"], rows,
                                f"{get(s, 'train_images', default='?')} training images, {get(s, 'epochs')} epochs, "
                                f"mean over {get(s, 'seeds', default=1)} seed(s)")],
                  rule=f"precondition: {RULES['precondition']}; degradation: the deepest plain net trains to a higher "
                       "loss than a shallower one; residual: its deep-vs-shallow gap is smaller than the plain net's "
                       "(paired by seed, Bonferroni-corrected 95 % intervals over the shallower depths)",
                  effect=effect_of(get(s, "evidence", "degradation", depths[0] if depths else ""),
                                   f"plain deepest − depth {depths[0] if depths else '?'} train loss"),
                  sentence=plain_sentence(s, verdict))
    sec.notes.append(WHY_GAP_RULE)
    return with_figures(sec, run, {
        "depth.png": "Final training loss (left) and test error (right) against depth, plain and residual: a plain "
                     "curve that rises with depth is the degradation; the residual curve should not rise.",
        "curves.png": "Training loss per epoch for every depth (dashed: plain, solid: residual; log scale)."})
