"""``connlab depth --preset course``: the course's residual notebook, as the course runs it.

The CIML summer institute's ``CIML23_MNIST_wResidConnections_v0.ipynb`` (repository
ciml-org/ciml-summer-institute-2023, folder 4.6_deep_learning_special_connections) asks "do skip
connections help?" of a deep CNN that classifies noisy digits. Its protocol, fact by fact:

    data           MNIST's first 1,000 training digits; validation: MNIST's first 1,000 test digits
                   (here: when the full MNIST is at hand, else 1,000 embedded digits outside the
                   training ones; ``summary["validation"]`` says which)
    noise          the Exercise-1 salt and pepper, clip(x + round(U(-1, 1)), 0, 1), drawn once per set
    network        ``connlab.models.identity_cnn``: conv 64 + pool, 3 identity blocks, dense 32, dense 10
    initialisation Keras' (Glorot-uniform kernels, zero biases)
    loss           *binary* cross-entropy against one-hot labels, which Keras computes on the logits its
                   softmax caches (``course_bce``); a quirk: the right loss for one label of ten is the
                   categorical one, trained here beside it
    training       Adam (Keras' default lr 1e-3), batch 128, 20 epochs, shuffled each epoch
    early stopping on the validation loss, patience 5, the last weights kept (Keras' defaults)
    metric         validation accuracy (Keras resolves "accuracy" to the categorical one here)
    the course     3 blocks: without residuals 0.100 (the ten digits it shows all predicted "7"),
                   with residuals 0.634

Every seed draws its own noisy sets and initial weights; the variants of one seed (plain and
residual, each loss) share them, the same digits and the same batches, as the notebook's two
runs share its noisy sets, so the claim is tested paired by seed. The run folder:

    summary.json   "variants"[name]: kind, loss, blocks, params and "seeds"[i]: val_accuracy, val_loss,
                   val_bce, val_cce, majority_share (the share of the most common predicted class),
                   epochs_trained; "reproduction": the course's figures against ours; "evidence"
    course_depth.png   validation accuracy per seed, and per epoch (first seed)
    variants/<kind>-<loss>-b<blocks>-seed<s>/   metrics.jsonl, model.safetensors, checkpoints/

What the command prints and the report's section: ``connlab.experiments.depth_course_page``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab.data import to_unit
from connlab.data.course import load_course_data
from connlab.data.noise import salt_and_pepper
from connlab.errors import UserError
from connlab.evidence import compare, reproduction
from connlab.experiments.section import NOT_MEASURED, evidence_line, get
from connlab.experiments.variants import train_variant
from connlab.metrics import mean_std
from connlab.models.identity_cnn import IdentityCNN, IdentityCNNConfig
from connlab.nn.init import keras_init_
from connlab.plots import finish_axes, pyplot, save_figure
from connlab.runs import write_summary
from connlab.train import EarlyStopping, pick_device

NOTEBOOK = "CIML23_MNIST_wResidConnections_v0.ipynb (ciml-org/ciml-summer-institute-2023)"
KINDS = ("plain", "residual")
LOSSES = {"bce": "binary cross-entropy on one-hot labels, of the logits as Keras computes it (the course's)",
          "cce": "categorical cross-entropy"}
COURSE_BLOCKS = 3
COURSE_ACCURACY = {"plain": 0.100, "residual": 0.634}   # the notebook's printed val_accuracy, epoch 20
VALIDATION_IMAGES = 1000                                 # X_test[0:1000]
MONITOR = "val_loss"
PLATEAU = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))   # BCE of answering every class's prior, 0.1
ONE_CLASS = 0.9              # a net that gives >= 90 % of the validation digits one label "predicts one class"
# the preset: every flag of the protocol; a flag the user gives wins (connlab.experiments.config)
COURSE_PRESET = dict(depths=(COURSE_BLOCKS,), width=64, epochs=20, batch_size=128, lr=1e-3, limit=1000,
                     losses=("bce", "cce"), patience=5)
RULE = ("compare(validation accuracy[plain], validation accuracy[residual], better='higher'), paired by seed "
        f"(the same noisy digits, initial weights and batches), binary cross-entropy, {COURSE_BLOCKS} blocks: "
        "supported when the 95 % interval of the difference lies above 0")


def loss_list(text: str) -> tuple[str, ...]:
    """A flag parser: ``bce,cce`` -> ("bce", "cce")."""
    values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    bad = [v for v in values if v not in LOSSES]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"{bad[0] if bad else text!r} is not a loss: give some of "
                                         f"{', '.join(LOSSES)}")
    return values


def variant_name(kind: str, loss: str, blocks: int) -> str:
    return f"{kind}-{loss}-b{blocks}"


# --- the two losses, on logits ----------------------------------------------------------------------

def course_bce(logits, labels):
    """What the course's Keras computes for ``loss='binary_crossentropy'`` after its softmax layer.

    Keras' softmax caches its input on its output (``_keras_logits``, "to use for crossentropy loss") and
    ``binary_crossentropy`` uses it when present: the loss is ``sigmoid_cross_entropy_with_logits`` of the
    *logits* against the one-hot labels, ten independent yes/no questions averaged over outputs and batch,
    not the BCE of the softmax probabilities. Its first value is ln 2 (logits 0); the course's plain run
    starts its epoch 1 at 0.6403 and ends on 0.3248, the prior of every class (``PLATEAU``)."""
    logits = logits.float()   # (B, classes)
    return F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, logits.shape[1]).float())


def categorical(logits, labels):
    return F.cross_entropy(logits.float(), labels)


LOSS_FN = {"bce": course_bce, "cce": categorical}


def protocol_differences(cfg) -> list[str]:
    """The settings where this run leaves the course's protocol ("epochs 5 (the course: 20)")."""
    out = [f"{name.replace('_', ' ')} {_shown(getattr(cfg, name))} (the course: {_shown(value)})"
           for name, value in COURSE_PRESET.items() if name not in ("depths", "losses") and getattr(cfg, name) != value]
    if COURSE_BLOCKS not in cfg.depths:
        out.append(f"blocks {_shown(cfg.depths)} (the course: {COURSE_BLOCKS})")
    if "bce" not in cfg.losses:
        out.append("no binary cross-entropy variant (the course's loss)")
    return out


def _shown(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


# --- the run ----------------------------------------------------------------------------------------

def run_course(cfg, out: Path, resume: bool = False) -> dict:
    check_course_flags(cfg)
    device = pick_device(cfg.device)
    course = load_course_data(cfg.data_dir, n_train=cfg.limit, n_validation=VALIDATION_IMAGES)
    data = course.data
    labels = data.train_labels.to(device), data.test_labels.to(device)
    stopping = EarlyStopping(MONITOR, cfg.patience) if cfg.patience else None
    records: dict[str, list[dict]] = {}
    meta: dict[str, dict] = {}
    # the course's loss first, every seed of it, then the variants: a long run that is stopped early has
    # the course's comparison, and the summary is rewritten after every plain/residual pair (--resume goes on)
    for loss in cfg.losses:
        for blocks in cfg.depths:
            for seed in range(cfg.seed, cfg.seed + cfg.seeds):
                images = tuple(x.to(device) for x in noisy_sets(data, seed))
                for kind in KINDS:
                    train_one(cfg, out, resume, (kind, loss, blocks, seed), images, labels, stopping, records, meta)
                write_summary(out, build_summary(cfg, course, device, records, meta, complete=False))
    summary = build_summary(cfg, course, device, records, meta, complete=True)
    write_summary(out, summary)
    course_figure(summary, out)
    return summary


def check_course_flags(cfg) -> None:
    """The course's notebook runs on MNIST's first --limit digits: refuse anything else in one line."""
    if cfg.dataset != "mnist":
        raise UserError(f"--dataset {cfg.dataset}: the course's residual notebook runs on MNIST (--dataset mnist)")
    if cfg.limit is None:
        raise UserError("--preset course trains on MNIST's first --limit digits (the course: 1000); give a number")


def train_one(cfg, out: Path, resume: bool, variant: tuple, images: tuple, labels: tuple, stopping,
              records: dict, meta: dict) -> None:
    """Train one net, ``variant`` = (kind, loss, blocks, seed), on the seed's noisy (train, validation) digits;
    its numbers go into ``records`` (one per seed) and ``meta`` (one per variant)."""
    kind, loss, blocks, seed = variant
    (train_x, val_x), (train_y, val_y) = images, labels
    name = variant_name(kind, loss, blocks)
    model_cfg = IdentityCNNConfig(blocks, kind == "residual", width=cfg.width,
                                  hidden=max(1, cfg.width // 4))   # the course: 64 -> 16
    loss_fn = LOSS_FN[loss]

    def build():
        # Keras' initialisation, drawn from the seed: plain and residual start equal
        return keras_init_(IdentityCNN(model_cfg), torch.Generator().manual_seed(seed))

    def evaluate(model):   # Keras' val_loss / val_accuracy
        logits = predict(model, val_x)
        return {MONITOR: loss_fn(logits, val_y).item(),
                "val_accuracy": (logits.argmax(1) == val_y).float().mean().item()}

    model, result = train_variant(
        cfg, out, f"{name}-seed{seed}", build, lambda m, batch, g: loss_fn(m(batch[0]), batch[1]),
        (train_x, train_y), train_x.device, model_config=asdict(model_cfg), seed=seed, evaluate=evaluate,
        early_stopping=stopping, resume=resume, label=f"{name} seed {seed}")
    meta[name] = {"kind": kind, "loss": loss, "blocks": blocks, "params": sum(p.numel() for p in model.parameters())}
    records.setdefault(name, []).append(
        {"seed": seed, **final_scores(model, loss, val_x, val_y, train_x, train_y),
         "epochs_trained": len(result.history), "stopped_epoch": result.stopped_epoch,
         "train_seconds": result.train_seconds,
         "history": [{k: h.get(k) for k in ("epoch", "train_loss", MONITOR, "val_accuracy")}
                     for h in result.history]})


def build_summary(cfg, course, device, records: dict, meta: dict, complete: bool) -> dict:
    """summary.json from the per-seed records so far (``complete``: every variant and seed is in)."""
    data = course.data
    variants = {name: {**meta[name], **means(recs), "seeds": recs} for name, recs in records.items()}
    differences = protocol_differences(cfg)
    pairs = [(loss, b) for loss in cfg.losses for b in cfg.depths
             if all(variant_name(k, loss, b) in variants for k in KINDS)]
    summary = {
        "experiment": "depth", "protocol": "course", "notebook": NOTEBOOK, "device": str(device),
        "complete": complete, **course.describe(), "data_source": data.source, "train_images": len(data.train_images),
        "validation_images": len(data.test_images),
        "validation_class_counts": torch.bincount(data.test_labels, minlength=10).tolist(),
        "blocks": list(cfg.depths), "losses": list(cfg.losses), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "patience": cfg.patience, "seeds": cfg.seeds, "protocol_differences": differences,
        "course": {"blocks": COURSE_BLOCKS, "loss": "bce", "val_accuracy": COURSE_ACCURACY},
        "evidence": {f"{loss}-b{b}": compare(accuracies(variants, "plain", loss, b),
                                             accuracies(variants, "residual", loss, b), better="higher").as_dict()
                     for loss, b in pairs},
    }
    if not differences and ("bce", COURSE_BLOCKS) in pairs:   # the course's figures are of its protocol only
        summary["reproduction"] = {
            kind: reproduction(COURSE_ACCURACY[kind], accuracies(variants, kind, "bce", COURSE_BLOCKS)).as_dict()
            for kind in KINDS}
    summary["variants"] = variants
    summary["verdict"] = ": ".join(judge(summary))
    return summary


def noisy_sets(data, seed: int):
    """The training and validation digits in [0, 1] with the salt and pepper drawn once, from ``seed``."""
    g = torch.Generator().manual_seed(seed)   # on the CPU: the same noise on every device
    return salt_and_pepper(to_unit(data.train_images), g), salt_and_pepper(to_unit(data.test_images), g)


def predict(model, x):
    return torch.cat([model(chunk).float() for chunk in x.split(500)])


def final_scores(model, loss: str, val_x, val_y, train_x, train_y) -> dict:
    """The final weights' numbers (the last epoch's, as Keras keeps them): accuracy, the training loss
    (``val_loss``) and both losses, and how much of the validation set gets the most common label
    (1.0: one class for every digit)."""
    with torch.no_grad():
        logits, train_logits = predict(model.eval(), val_x), predict(model, train_x)
    predicted = logits.argmax(1)
    counts = torch.bincount(predicted, minlength=logits.shape[1])
    bce, cce = course_bce(logits, val_y).item(), categorical(logits, val_y).item()
    return {"val_accuracy": (predicted == val_y).float().mean().item(),
            "val_loss": bce if loss == "bce" else cce, "val_bce": bce, "val_cce": cce,
            "majority_class": int(counts.argmax()), "majority_share": counts.max().item() / len(predicted),
            "train_accuracy": (train_logits.argmax(1) == train_y).float().mean().item()}


def means(records: list[dict]) -> dict:
    out = {}
    for key in ("val_accuracy", "val_bce", "val_cce", "majority_share", "train_accuracy", "epochs_trained",
                "train_seconds"):
        out[key], out[f"{key}_std"] = mean_std([r[key] for r in records])
    out["one_class_seeds"] = sum(r["majority_share"] >= ONE_CLASS for r in records)
    return out


def accuracies(variants: dict, kind: str, loss: str, blocks) -> list[float]:
    return [r["val_accuracy"] for r in get(variants, variant_name(kind, loss, blocks), "seeds", default=[])]


def claim_key(summary: dict) -> str | None:
    """The comparison the verdict reads: the course's loss and block count, else the nearest there is."""
    blocks = [int(b) for b in get(summary, "blocks", default=[]) or []]
    losses = get(summary, "losses", default=[]) or []
    if not blocks or not losses:
        return None
    b = COURSE_BLOCKS if COURSE_BLOCKS in blocks else max(blocks)
    return f"{'bce' if 'bce' in losses else losses[0]}-b{b}"


def judge(summary: dict) -> tuple[str, str]:
    key = claim_key(summary)
    if key is None:
        return NOT_MEASURED, "no plain/residual pair was trained"
    loss, blocks = key.split("-b")
    verdict, line = evidence_line(get(summary, "evidence", key), RULE,
                                  f"residual − plain validation accuracy ({loss}, {blocks} blocks)", spec=".3f")
    return verdict, line


# --- the run's figure ---------------------------------------------------------------------------------

def course_figure(summary: dict, out: Path) -> None:
    plt = pyplot()
    names = list(summary["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, name in enumerate(names):
        v = summary["variants"][name]
        accs = [r["val_accuracy"] for r in v["seeds"]]
        axes[0].plot([i] * len(accs), accs, "o", alpha=0.6, label=None)
        axes[0].plot([i - 0.25, i + 0.25], [v["val_accuracy"]] * 2, "k-")
        if v["loss"] == "bce" and v["blocks"] == COURSE_BLOCKS:
            axes[0].plot([i], [COURSE_ACCURACY[v["kind"]]], "r*", markersize=14,
                         label="the course's run" if v["kind"] == "plain" else None)
        hist = v["seeds"][0]["history"]
        axes[1].plot([h["epoch"] for h in hist], [h["val_accuracy"] for h in hist],
                     "--" if v["kind"] == "plain" else "-", marker="o", markersize=3, label=name)
    axes[0].set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    axes[0].set_ylabel("validation accuracy (final weights)")
    starred = any(v["loss"] == "bce" and v["blocks"] == COURSE_BLOCKS for v in summary["variants"].values())
    finish_axes(axes[0], None, None, legend=8 if starred else None)
    finish_axes(axes[1], "epoch", "validation accuracy", legend=7)
    fig.suptitle(f"the course's residual notebook: {summary['train_images']} noisy training digits, "
                 f"{summary['seeds']} seed(s); validation: {summary['validation_text']}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "course_depth.png", dpi=90)
