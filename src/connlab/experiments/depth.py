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
                    claim's paired comparisons (``RULES``), which the verdict only reads
    depth.png       final training loss and test error vs depth, plain and residual
    curves.png      training loss per epoch, every model
    variants/<kind>-d<depth>[-seed<s>]/   metrics.jsonl, model.safetensors, checkpoints/ (-seed<s> when --seeds > 1)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab.data import to_unit
from connlab.errors import UserError
from connlab.evidence import compare
from connlab.experiments.common import (DataSettings, TrainingSettings, add_training_command, int_list,
                                        nonnegative_int, positive_int)
from connlab.experiments.config import flag
from connlab.experiments import depth_course, depth_course_page
from connlab.experiments.depth_course import COURSE_PRESET, loss_list
from connlab.experiments.section import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, NOT_SUPPORTED, PARTLY, SUPPORTED,
                                         Run, Section, Table, effect_of, evidence_line, fmt, get, num, pct, stored,
                                         weakest, with_figures)
from connlab.experiments.sentence import Part, Wording, measured, sentence
from connlab.experiments.variants import classification_loss, load_images, train_variant
from connlab.models.resnet import ResNet, ResNetConfig
from connlab.plots import finish_axes, pyplot, save_figure
from connlab.runs import write_summary

DEFAULT_DEPTHS = (2, 8, 20)
FULL_DEPTHS = (2, 8, 20, 32, 56)
DEFAULT_LIMIT = 2000       # training images by default on a CPU; --full uses the whole set
TRAIN_EVAL_SIZE = 2000     # training images re-scored in eval mode at the end
KINDS = ("plain", "residual")
LEARNED = 0.9 * math.log(10)  # a net whose training loss stays above 0.9 x a uniform guess's (ln 10) learned nothing
SHALLOW_LEARNS = 0.15      # precondition: the shallowest plain net's mean test error (chance is 0.9)
# The claim's rules, written once; d runs over the shallower depths, D is the deepest, and the
# intervals are Bonferroni-corrected over those depths (a 95 % family).
WHY_GAP_RULE = ("Why the residual verdict uses the gap rule: \"residual connections remove the degradation\" is a "
                "claim about the plain net's deep-vs-shallow gap, so it is tested as that gap shrinking; \"the deepest "
                "residual net trains at least as well as depth d\" is shown next to it, but an interval around 0 "
                "could not show \"at least as well\" (that needs a margin), and when it lies above 0 the verdict "
                "drops to partly supported.")
RULES = {
    "precondition": f"mean test error of the shallowest plain net ≤ {SHALLOW_LEARNS:.0%}",
    "degradation": "compare(train loss[plain, d], train loss[plain, D], better='higher'), paired by seed; "
                   "supported when it is for some d",
    "residual_gap": "compare(gap[plain], gap[residual], better='lower') with gap = train loss[D] − train loss[d] "
                    "per seed; supported when the residual gap is smaller at every d where the plain net degrades",
    "residual_at_least": "compare(train loss[residual, d], train loss[residual, D], better='lower'), paired by "
                         "seed: the deepest residual net trains at least as well as depth d (shown, not the verdict)",
}


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


def depth_evidence(results: dict, depths) -> dict:
    """The claim's comparisons (``RULES``) on the per-seed final training losses, as Evidence dicts:
    {"confidence", "degradation": {d: ...}, "residual_gap": {d: ...}, "residual_at_least": {d: ...}}."""
    deepest = max(depths)
    shallower = sorted(d for d in set(depths) if d != deepest)
    if not shallower:
        return {}
    confidence = 1 - 0.05 / len(shallower)
    loss = {k: {d: [r["final_train_loss"] for r in results[k][str(d)]["seeds"]] for d in depths} for k in KINDS}
    out = {"confidence": confidence, "degradation": {}, "residual_gap": {}, "residual_at_least": {}}
    for d in shallower:
        gap = {k: [deep - shallow for shallow, deep in zip(loss[k][d], loss[k][deepest])] for k in KINDS}
        out["degradation"][str(d)] = compare(loss["plain"][d], loss["plain"][deepest], better="higher",
                                             confidence=confidence).as_dict()
        out["residual_gap"][str(d)] = compare(gap["plain"], gap["residual"], better="lower",
                                              confidence=confidence).as_dict()
        out["residual_at_least"][str(d)] = compare(loss["residual"][d], loss["residual"][deepest], better="lower",
                                                   confidence=confidence).as_dict()
    return out


def judge(summary: dict) -> tuple[str, str]:
    """The claim's rules (``RULES``) on the stored comparisons.

    Precondition: the shallowest plain net learns (mean test error ≤ ``SHALLOW_LEARNS``); otherwise
    a difference between nets that have not started learning is no degradation: inconclusive.
    Degradation: supported when the deepest plain net trains to a higher loss than some shallower one.
    Residual: the verdict uses the gap rule — the residual net's deep-vs-shallow gap is smaller than
    the plain net's at each depth where the plain net degrades — because "removes the degradation"
    is a claim about the degradation, and an interval containing 0 in "the deepest residual net
    trains at least as well as depth d" would not show "at least as well" anyway (that needs a
    margin). That comparison is shown next to it; when it is contradicted (the deepest residual
    net trains measurably worse than a shallower one) the claim is only partly supported.
    """
    depths = sorted({str(d) for d in get(summary, "depths", default=[]) or []}, key=int)
    if len(depths) < 2:
        return NOT_MEASURED, "needs at least two depths"
    shallowest = depths[0]
    error = num(summary, "results", "plain", shallowest, "test_error")
    evidence = get(summary, "evidence")
    if error is None:
        return NOT_MEASURED, "the shallowest plain net was not measured"
    pre = (f"precondition ({RULES['precondition']}): plain depth {shallowest} test error {100 * error:.1f} % over "
           f"{get(summary, 'seeds', default=1)} seed(s)")
    if error > SHALLOW_LEARNS:
        return INCONCLUSIVE, (pre + " — not met: the nets did not learn at this budget, so neither degradation nor "
                                    "its removal can be judged (docs/evidence-budgets.md §3: a regime that learns)")
    if not isinstance(evidence, dict) or not isinstance(get(evidence, "degradation"), dict):
        return NOT_MEASURED, pre + " — met; " + evidence_line(None, RULES["degradation"], "")[1]
    lines, degraded, gap_verdicts, at_least = [pre + " — met"], [], [], []
    for d in depths[:-1]:
        v, line = evidence_line(get(evidence, "degradation", d), RULES["degradation"],
                                f"plain depth {depths[-1]} − depth {d} train loss")
        lines.append("degradation: " + line)
        if v == SUPPORTED:
            degraded.append(d)
    degradation = SUPPORTED if degraded else NOT_SUPPORTED
    for d in depths[:-1]:
        v, line = evidence_line(get(evidence, "residual_gap", d), RULES["residual_gap"],
                                f"residual − plain gap (depth {d} → {depths[-1]})")
        lines.append("residual removes it: " + line)
        if d in degraded:
            gap_verdicts.append(v)
        v, line = evidence_line(get(evidence, "residual_at_least", d), RULES["residual_at_least"],
                                f"residual depth {depths[-1]} − depth {d} train loss")
        lines.append("shown: " + line)
        at_least.append(v)
    residual = weakest(gap_verdicts) if gap_verdicts else NOT_SUPPORTED
    verdict = weakest([degradation, residual])
    if verdict == SUPPORTED and CONTRADICTED in at_least:
        verdict = PARTLY
        lines.append("partly: residual connections shrink the degradation, but the deepest residual net still "
                     "trains measurably worse than a shallower residual net")
    if not degraded:
        lines.append("the plain net does not degrade measurably at this budget")
    return verdict, " | ".join(lines)


def plain_sentence(summary: dict, verdict: str) -> str:
    """The verdict of ``judge`` in one plain sentence (``connlab.experiments.sentence``), from the same numbers."""
    depths = sorted({str(d) for d in get(summary, "depths", default=[]) or []}, key=int)
    error = num(summary, "results", "plain", depths[0], "test_error") if depths else None
    if len(depths) < 2 or error is None:
        return "The claim needs plain and residual nets trained at two depths or more: not measured."
    if error > SHALLOW_LEARNS:
        return (f"The shallowest plain net did not learn (test error {100 * error:.1f} %, above "
                f"{100 * SHALLOW_LEARNS:.0f} %), so neither the degradation nor its removal can be judged: "
                "inconclusive at this budget.")
    deep = depths[-1]
    evidence = get(summary, "evidence")
    # the comparison said: the shallower depth where the plain net degrades most clearly (the lowest interval end)
    found = [(d, stored(evidence, "degradation", d)) for d in depths[:-1]]
    degraded = [(d, ev) for d, ev in found if ev is not None and ev.verdict == SUPPORTED]
    d, ev = max(degraded, key=lambda pair: pair[1].low) if degraded else found[0]
    parts = [measured(ev, Wording(f"the {deep}-block plain net ends with a training loss", f"higher than the "
                                  f"{d}-block one", f"lower than the {d}-block one",
                                  "whether the deeper plain net trains worse", spec=".3f"))]
    if not degraded and parts[0].verdict != NOT_MEASURED:
        return sentence(verdict, [Part(verdict, parts[0].clause + ", so at this budget the plain net shows no "
                                                                  "degradation for residual connections to remove")])
    parts.append(measured(stored(evidence, "residual_gap", d),
                          Wording(f"with residual connections that deep-vs-shallow gap is", "larger", "smaller",
                                  "whether residual connections shrink the gap", spec=".3f")))
    for dd in depths[:-1]:
        at_least = stored(evidence, "residual_at_least", dd)
        if at_least is not None and at_least.verdict == CONTRADICTED:
            parts.append(measured(at_least, Wording(f"the {deep}-block residual net still ends with a training "
                                                    f"loss", f"higher than the {dd}-block one",
                                                    f"lower than the {dd}-block one", "", spec=".3f"),
                                  headline=False))
            break
    return sentence(verdict, parts)


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
