"""``connlab classifier`` — the MNIST classifier behind the diffusion quality metric.

Trains ``MnistClassifier`` with the lab's one training loop and writes the run folder:

    summary.json       test_accuracy, per-class accuracy, params, train_seconds, data source
    model.safetensors  the weights (with the model config in their signature)
    metrics.jsonl, checkpoints/

``connlab.quality`` loads such a folder (``--classifier RUN_DIR`` in ``connlab diffusion``)
and compares generated and real digits in the classifier's penultimate features.

The default (5 epochs on the embedded 9,000 / 1,000 split) is sized for a CPU; ``--full`` (the
60,000 / 10,000 set, 6 epochs) is the >= 99 % recipe. Measured figures: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from connlab.data import load_dataset, to_unit
from connlab.errors import UserError
from connlab.experiments.common import DataSettings, TrainingSettings, add_training_command, positive_int
from connlab.experiments.config import flag
from connlab.experiments.variants import classification_loss
from connlab.models.classifier import ClassifierConfig, MnistClassifier, count_parameters
from connlab.quality import find_classifier, load_classifier as load
from connlab.runs import prepare_run, resumable, write_summary
from connlab.train import fit, pick_device, seed_everything

FULL_EPOCHS = 6


@dataclass(frozen=True)
class ClassifierExperiment(TrainingSettings, DataSettings):
    PRESETS = {"full": dict(epochs=FULL_EPOCHS)}
    PRESET_FIELD = "full"

    lr: float = 2e-3
    full: bool = flag(False, "the >= 99 %% recipe: full MNIST (not the embedded subset; error if only that is "
                             "found)")
    feature_dim: int = flag(64, "width of the feature layer", type=positive_int)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, ClassifierExperiment, "classifier", run_experiment, describe, config=checked_config)


def checked_config(args: argparse.Namespace) -> ClassifierExperiment:
    """The config; with ``--full`` the full set is looked for now (it may be downloaded into the cache),
    before a run folder exists, so a machine with the embedded subset only leaves no half-made run."""
    cfg = ClassifierExperiment.from_args(args)
    if cfg.full:
        check_full(load_dataset(cfg.dataset, cfg.data_dir, 1).source)
    return cfg


def check_full(source: str) -> None:
    if source == "embedded":
        raise UserError("--full needs the full MNIST set, but only the embedded subset was found "
                        "(pass --data-dir with the four IDX files)")


def describe(summary: dict, cfg: ClassifierExperiment) -> str:
    return (f"test accuracy {summary['test_accuracy']:.2%} on {summary['test_images']:,} {summary['data_source']} "
            f"test images ({summary['params']:,} parameters, {summary['train_seconds']:.0f} s)")


def run_experiment(cfg: ClassifierExperiment, out: Path, resume: bool = False, data=None) -> dict:
    """Train and evaluate; ``data`` (an ``ImageData``) skips loading when the caller has it."""
    device = pick_device(cfg.device)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit)
    if cfg.full:
        check_full(data.source)
    data = data.to(device)
    seed_everything(cfg.seed)
    model_cfg = ClassifierConfig(feature_dim=cfg.feature_dim)
    model = MnistClassifier(model_cfg).to(device)

    loss_fn = classification_loss

    def evaluate(model):
        return {"test_accuracy": accuracy(model, data.test_images, data.test_labels)}

    train_cfg = cfg.train_config(optimizer="adamw", weight_decay=1e-4, lr_schedule="cosine", warmup_steps=50)
    result = fit(model, loss_fn, (data.train_images, data.train_labels), train_cfg, out,
                 model_config=json.loads(json.dumps(asdict(model_cfg))), evaluate=evaluate,
                 resume=resumable(out, resume), label="classifier")
    with torch.no_grad():
        pred = predict(model, data.test_images)
    per_class = [(pred[data.test_labels == c] == c).float().mean().item() for c in range(10)]
    summary = {
        "experiment": "classifier", "dataset": data.name, "data_source": data.source, "device": str(device),
        "train_images": len(data.train_images), "test_images": len(data.test_images),
        "params": count_parameters(model), "model_config": asdict(model_cfg), "epochs": cfg.epochs,
        "test_accuracy": (pred == data.test_labels).float().mean().item(),
        "per_class_accuracy": per_class, "train_seconds": result.train_seconds,
        "history": result.history,
    }
    write_summary(out, summary)
    return summary


def predict(model, images, chunk: int = 1000):
    """Predicted labels (N,) for uint8 images (N, 1, 28, 28)."""
    return torch.cat([model(to_unit(x)).argmax(1) for x in images.split(chunk)])


def accuracy(model, images, labels) -> float:
    return (predict(model, images) == labels).float().mean().item()


def find_or_train_classifier(path: str | Path | None, run: Path, data, device) -> tuple:
    """The quality classifier of diffusion run ``run`` and its info: ``path`` (a classifier run) if given,
    else the one in ``run/classifier``, trained now (default recipe, on ``data``'s training set) if missing."""
    found = find_classifier(Path(path) if path else None, Path(run), device)
    if found is not None:
        return found
    local = Path(run) / "classifier"
    shutil.rmtree(local, ignore_errors=True)  # an interrupted earlier attempt
    cfg = ClassifierExperiment(device=str(device), dataset=data.name)
    local, cfg = prepare_run(local, "classifier", cfg, resume=False)
    run_experiment(cfg, local, data=data)
    return find_classifier(None, Path(run), device)


def load_classifier(run_dir: Path, device="cpu"):
    """The classifier of a ``connlab classifier`` run folder (``connlab.quality.load_classifier``, its home now)."""
    return load(run_dir, device)
