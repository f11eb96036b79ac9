"""Sample quality for generated digits: a Fréchet distance in an MNIST classifier's features.

FID (Heusel et al. 2017) fits a Gaussian to the features of real and of generated images
and reports the Fréchet (2-Wasserstein) distance between the two Gaussians:

    d² = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

Inception-v3 features are meaningless for 28×28 grey digits (and slow on a CPU), so the
features here are the penultimate layer of ``connlab classifier`` — the MNIST convention
of the DDPM/DDIM literature.  The distance itself is torchmetrics'
``FrechetInceptionDistance`` with that network as its custom ``feature`` module; it
accumulates sums in float64 and takes the matrix square root from the eigenvalues.

The number alone can mislead, so it comes with:
- the floor: the same distance between *real* training and *real* test images, at the same
  sample size (the estimate is biased upward for small N; nothing generated can beat real
  digits, so "distance − floor" is the part a better model could remove);
- the classifier's mean confidence (max softmax) on the samples and the fraction above 0.9:
  blurry or noisy strokes get low confidence even when the distance looks fine;
- the histogram of predicted classes: mode collapse shows up as missing digits.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from connlab.checkpoint import load_weights, model_signature
from connlab.errors import UserError
from connlab.models.classifier import ClassifierConfig, MnistClassifier
from connlab.runs import read_json_object, read_run

CONFIDENT = 0.9  # a sample is "confidently labelled" when max softmax exceeds this


class ClassifierFeatures(nn.Module):
    """The feature extractor torchmetrics calls: images (N, 1, 28, 28) in [0, 1] → (N, feature_dim)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.cfg.feature_dim  # read by torchmetrics instead of a dummy forward

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x.float())


def frechet_distance(real: torch.Tensor, fake: torch.Tensor, classifier: nn.Module, chunk: int = 1000) -> float:
    """Fréchet distance between ``real`` and ``fake`` images, (N, 1, 28, 28) floats in [0, 1]."""
    # lazy: torchmetrics costs ~2.5 s
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"the Fréchet distance needs >= 2 images per set, got {len(real)} real, {len(fake)} generated")
    device = next(classifier.parameters()).device
    # normalize=True declares float inputs in [0, 1]; with a custom module torchmetrics passes them through unchanged.
    fid = FrechetInceptionDistance(feature=ClassifierFeatures(classifier), normalize=True).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for part in images.split(chunk):
            fid.update(part.to(device).float(), real=is_real)
    return float(fid.compute())


@torch.no_grad()
def class_probabilities(images: torch.Tensor, classifier: nn.Module, chunk: int = 1000) -> torch.Tensor:
    """Softmax over the 10 classes, (N, 10), for images (N, 1, 28, 28) in [0, 1]."""
    device = next(classifier.parameters()).device
    return torch.cat([classifier(part.to(device).float()).softmax(1).cpu() for part in images.split(chunk)])


def sample_quality(fake: torch.Tensor, real_test: torch.Tensor, classifier: nn.Module) -> dict:
    """Distance to the real test images, confidence and class histogram of generated images in [0, 1]."""
    probs = class_probabilities(fake, classifier)
    confidence, label = probs.max(1)
    histogram = torch.bincount(label, minlength=probs.shape[1])
    return {
        "frechet_distance": frechet_distance(real_test, fake, classifier),
        "mean_confidence": confidence.mean().item(),
        "confident_fraction": (confidence > CONFIDENT).float().mean().item(),
        "class_histogram": histogram.tolist(),
        "classes_covered": int((histogram > 0).sum()),
        "num_samples": len(fake),
    }


def frechet_floor(real_train: torch.Tensor, real_test: torch.Tensor, classifier: nn.Module, n: int,
                  seed: int = 0) -> float:
    """The distance between ``n`` random real training images and the real test images."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(real_train), generator=g)[:n]
    return frechet_distance(real_test, real_train[pick.to(real_train.device)], classifier)


def load_classifier(run_dir: Path, device="cpu") -> tuple[nn.Module, dict]:
    """The trained classifier of a ``connlab classifier`` run folder, in eval mode, and its summary."""
    run_dir = Path(run_dir)
    read_run(run_dir, "classifier")
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{run_dir}: the classifier run has no summary.json (unfinished? use --resume)")
    summary = read_json_object(summary_path)
    if not isinstance(summary.get("model_config"), dict) or "test_accuracy" not in summary:
        raise UserError(f"{summary_path}: not a finished classifier's summary (no model_config); the file is damaged")
    model_cfg = ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in summary["model_config"].items()})
    model = MnistClassifier(model_cfg)
    load_weights(model, run_dir / "model.safetensors",
                 model_signature(model, json.loads(json.dumps(asdict(model_cfg)))))
    return model.to(device).eval(), summary


def find_classifier(classifier_dir: Path | None, out: Path, device) -> tuple[nn.Module, dict] | None:
    """The classifier for the metric and where it came from; None when there is none to load.

    1. ``classifier_dir`` (``--classifier RUN_DIR``): a ``connlab classifier`` run folder;
    2. ``out/classifier``: one trained on the fly earlier for this run folder (finished: it has a summary).

    This module only loads: training one is the classifier experiment's job
    (``connlab.experiments.classifier.find_or_train_classifier``).
    """
    if classifier_dir is not None:
        model, summary = load_classifier(classifier_dir, device)
        source, run = "given (--classifier)", classifier_dir
    elif (Path(out) / "classifier" / "summary.json").is_file():
        run = Path(out) / "classifier"
        model, summary = load_classifier(run, device)
        source = "trained on the fly into this run folder"
    else:
        return None
    return model, {"source": source, "run": str(run), "test_accuracy": summary["test_accuracy"],
                   "data_source": summary["data_source"]}
