"""The measures behind the lecture's claims: pure functions on tensors and trained models, no training.

Each claim of the report is tested as the lecture states it; this module computes the number
the claim is about, ``connlab.evidence`` turns it into an effect with an interval and a verdict.

    baselines       PSNR / SSIM of the noisy input and of the mean training image against the
                    clean test digits (what any denoiser must beat); BCE with its log clamp stated
    ViT             attention_ink_ratio: does the attention rollout fall on the strokes?
    diffusion       structure_first (on ``connlab.diffusion.ddim_x0_path``'s chain): "early steps lay
                    down structure, late steps detail"; frechet_bootstrap: "DDIM samples with far fewer steps"
    ladder          chain_psnr_evidence: PSNR gain along the incremental-denoising chain

Images are (N, 1, H, W) floats in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from connlab.errors import UserError
from connlab.evidence import (CONTRADICTED, NOT_SUPPORTED, SUPPORTED, Evidence, at_least, bootstrap_compare, compare,
                              interval)
from connlab.metrics import psnr_per_image
from connlab.models.vit import attention_rollout, patch_relevance
from connlab.quality import ClassifierFeatures

# PyTorch's binary_cross_entropy clamps log(p) at −100 (a pixel predicted exactly 0 or 1
# against a target that disagrees costs 100 nats instead of infinity).
LOG_CLAMP = -100.0
INK = 0.5   # a pixel holds ink above this brightness


# --------------------------------------------------------------------------- baselines


def psnr_ssim(pred: torch.Tensor, clean: torch.Tensor) -> dict:
    """Mean PSNR (dB) and SSIM of ``pred`` against ``clean``, plus the per-image PSNRs (a list) for intervals."""
    # lazy: torchmetrics costs ~2.5 s
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, clean = pred.float().clamp(0, 1), clean.float()
    if pred.shape != clean.shape:
        raise UserError(f"prediction shape {tuple(pred.shape)} differs from the clean images' {tuple(clean.shape)}")
    per = psnr_per_image(pred, clean)
    return {"psnr": per.mean().item(), "ssim": structural_similarity_index_measure(pred, clean, data_range=1.0).item(),
            "psnr_per_image": per.tolist()}


def image_baselines(clean_test: torch.Tensor, noisy_test: torch.Tensor, train_images: torch.Tensor) -> dict:
    """What a denoiser must beat: the noisy input itself and the mean training image, as
    PSNR / SSIM against the clean test digits. Returns {"noisy_input": {...}, "mean_image": {...}},
    each from ``psnr_ssim`` without the per-image list."""
    mean_image = train_images.float().mean(dim=0, keepdim=True).expand_as(clean_test)
    out = {}
    for name, pred in (("noisy_input", noisy_test), ("mean_image", mean_image)):
        scores = psnr_ssim(pred, clean_test)
        out[name] = {"psnr": scores["psnr"], "ssim": scores["ssim"]}
    return out


def clamped_bce(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """BCE of ``pred`` against ``target`` and how much of it is PyTorch's log clamp.

    Returns {"bce", "clamped_pixels" (share of pixels whose term hit the clamp),
    "clamp_share" (share of the total BCE those pixels contribute), "note"}. A noisy input
    clipped to [0, 1] has exact 0 / 1 pixels where the clean digit has grey or the opposite
    value: each costs 100 × |disagreement|, an artefact of the clamp, not a measurement.
    """
    p, y = pred.float().clamp(0, 1), target.float()
    log_p, log_q = torch.log(p).clamp_min(LOG_CLAMP), torch.log1p(-p).clamp_min(LOG_CLAMP)
    terms = -(y * log_p + (1 - y) * log_q)
    hit = ((p == 0) & (y > 0)) | ((p == 1) & (y < 1))
    total = terms.sum().item()
    share = terms[hit].sum().item() / total if total > 0 else 0.0
    return {"bce": terms.mean().item(), "clamped_pixels": hit.float().mean().item(), "clamp_share": share,
            "note": f"log clamped at {LOG_CLAMP:g} (PyTorch); {100 * share:.1f} % of this BCE comes from "
                    f"{100 * hit.float().mean().item():.2f} % of pixels predicted exactly 0 or 1 against a target "
                    f"that disagrees"}


def baseline_bce(pred: torch.Tensor, target: torch.Tensor, max_clamp_share: float = 0.05) -> float | None:
    """The BCE of a baseline when it means something: None when more than ``max_clamp_share`` of it is the clamp."""
    scores = clamped_bce(pred, target)
    return None if scores["clamp_share"] > max_clamp_share else scores["bce"]


# --------------------------------------------------------------------------- ViT attention


def ink_patches(images: torch.Tensor, grid: int, threshold: float = INK) -> torch.Tensor:
    """(B, 1, H, W) -> (B, grid²) bool: which of the grid × grid patches hold an inked pixel (> threshold)."""
    b, _, h, w = images.shape
    if h % grid or w % grid:
        raise UserError(f"a {grid} x {grid} patch grid does not tile {h} x {w} images")
    peak = F.max_pool2d(images.float(), kernel_size=(h // grid, w // grid))  # (B, 1, grid, grid)
    return (peak > threshold).flatten(1)


def attention_ink_ratio(relevance: torch.Tensor, images: torch.Tensor, patch: int,
                        threshold: float = INK) -> torch.Tensor:
    """Per digit: the share of attention mass on inked patches / those patches' share of the image.

    relevance: (B, N) attention mass per patch token (e.g. ``patch_relevance(attention_rollout(maps))``),
    N = grid², patches of ``patch`` × ``patch`` pixels on ``images`` (B, 1, H, W). A ratio of 1 is
    what attention spread evenly over the image gives; > 1 means it falls on the strokes.
    Returns (B,); nan for a digit whose patches are all blank or all inked (no contrast to measure).
    """
    grid = images.shape[-1] // patch
    if relevance.shape[1] != grid * grid:
        raise UserError(f"relevance has {relevance.shape[1]} patches, but {patch}-pixel patches of "
                        f"{images.shape[-1]}-pixel images make {grid * grid}")
    ink = ink_patches(images, grid, threshold).float()  # (B, N)
    mass = relevance.float().clamp_min(0)
    mass_share = (mass * ink).sum(1) / mass.sum(1)
    area_share = ink.mean(1)
    ratio = mass_share / area_share
    return torch.where((area_share > 0) & (area_share < 1), ratio, torch.full_like(ratio, float("nan")))


@torch.no_grad()
def vit_attention_ink_ratio(model, images: torch.Tensor, threshold: float = INK) -> torch.Tensor:
    """``attention_ink_ratio`` of a ``connlab.models.vit.ViT``'s attention rollout on ``images`` (B, 1, 28, 28)."""
    was_training = model.training
    model.eval()
    model(images)
    maps = [m.float() for m in model.attention_maps()]  # depth x (B, heads, T, T)
    model.train(was_training)
    relevance = patch_relevance(attention_rollout(maps), model.cfg.pool == "cls")  # (B, N)
    return attention_ink_ratio(relevance, images, images.shape[-1] // model.cfg.grid, threshold)


def attention_on_strokes(ratios: torch.Tensor, threshold: float = 1.0, confidence: float = 0.95) -> Evidence:
    """The claim "its attention falls on the strokes": the ratio's mean over test digits lies above ``threshold``.

    1 is "no preference"; with 1,000 digits the interval is narrow enough that an untrained ViT
    (whose ratios sit within a fraction of a percent of 1) can land either side of it, so a
    rule may set a practical threshold above 1, stated before the run (docs/evidence-budgets.md).
    """
    values = [v for v in ratios.tolist() if v == v]  # drop the nan digits (no contrast)
    return at_least(values, threshold, confidence=confidence, what="test digits")


# --------------------------------------------------------------------------- diffusion


def structure_first(labels: torch.Tensor, x0_images: torch.Tensor, agree: float = 0.9,
                    confidence: float = 0.95) -> dict:
    """"Early steps lay down structure, late steps detail", measured on one DDIM chain.

    labels: (S, B) the classifier's label of x̂₀ at each of the S steps; the last row is the
    final sample's. x0_images: (S, B, 1, H, W) the x̂₀ images in [0, 1].
    Returns the agreement curve (share of samples whose label at step k equals the final one),
    ``structure_step``: the first step from which the agreement stays ≥ ``agree`` to the end
    (0-based, so ``structure_fraction`` = (step + 1) / S of the chain has run), and how much x̂₀
    still changes after it: mean absolute pixel change and relative L2 ‖x̂₀_k − x₀‖ / ‖x₀‖
    (mean over samples with its t interval). The claim holds when the structure step comes
    early and x̂₀ still changes after it (the detail is still being drawn).
    """
    S = labels.shape[0]
    if x0_images.shape[:2] != labels.shape:
        raise UserError(f"labels {tuple(labels.shape)} and x̂₀ images {tuple(x0_images.shape[:2])} disagree")
    agreement = (labels == labels[-1]).float().mean(dim=1)  # (S,)
    below = [k for k in range(S) if agreement[k] < agree]
    step = below[-1] + 1 if below else 0
    final = x0_images[-1].float().flatten(1)
    at = x0_images[step].float().flatten(1)
    rel = (at - final).norm(dim=1) / final.norm(dim=1).clamp_min(1e-8)
    mean_rel, low, high = interval(rel.tolist(), confidence=confidence) if len(rel) > 1 else (rel.item(), *[float("nan")] * 2)
    return {"agreement": agreement.tolist(), "structure_step": step, "steps": S,
            "structure_fraction": (step + 1) / S, "agree": agree,
            "mean_abs_change_after": (at - final).abs().mean().item(),
            "relative_l2_change_after": mean_rel, "relative_l2_interval": [low, high]}


def frechet_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D), in float64.

    The formula of ``connlab.quality.frechet_distance`` (torchmetrics' FID: the trace of the
    matrix square root from the eigenvalues of Σ_r Σ_g), on features computed once, so a
    bootstrap can resample them without running the classifier again.
    """
    a, b = real.double(), fake.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    tr_sqrt = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * tr_sqrt)


@torch.no_grad()
def classifier_features(images: torch.Tensor, classifier, chunk: int = 1000) -> torch.Tensor:
    """(N, 1, 28, 28) in [0, 1] -> (N, D): the classifier's penultimate features (as ``connlab.quality`` uses)."""
    feats = ClassifierFeatures(classifier)
    device = next(classifier.parameters()).device
    return torch.cat([feats(part.to(device)).double().cpu() for part in images.split(chunk)])


def frechet_bootstrap(real_features: torch.Tensor, baseline_features: torch.Tensor,
                      treatment_features: torch.Tensor, *, resamples: int = 200, seed: int = 0,
                      confidence: float = 0.95) -> Evidence:
    """Fréchet distance to the real digits, treatment − baseline, with a bootstrap interval over samples.

    For "DDIM samples with far fewer steps": baseline = DDPM with all T steps, treatment = DDIM-50
    from the same model and the same N. The real set is held fixed; each resample redraws both
    generated sets. better="lower": SUPPORTED means DDIM-50 is *better*; see ``within_margin``
    for the claim "about as good".
    """
    return bootstrap_compare(lambda f: frechet_from_features(real_features, f), baseline_features,
                             treatment_features, better="lower", confidence=confidence, resamples=resamples,
                             seed=seed)


def within_margin(ev: Evidence, margin: float) -> str:
    """Non-inferiority: SUPPORTED when the whole interval is better than ``margin`` on the worse side.

    For better="lower" the treatment is "about as good" when its interval's upper end stays below
    +margin (it is at most ``margin`` worse), CONTRADICTED when the lower end is above +margin.
    """
    if margin < 0:
        raise UserError(f"a non-inferiority margin must be >= 0, got {margin}")
    if ev.low != ev.low:  # nan: no interval
        return NOT_SUPPORTED
    lo, hi = (ev.low, ev.high) if ev.better == "lower" else (-ev.high, -ev.low)
    return SUPPORTED if hi < margin else CONTRADICTED if lo > margin else NOT_SUPPORTED


# --------------------------------------------------------------------------- ladder


def chain_psnr(chain: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """(K + 1, B, 1, H, W) images along a denoising chain (x_T first) -> (K + 1, B) per-digit PSNR (dB)."""
    return torch.stack([psnr_per_image(x.clamp(0, 1), clean) for x in chain])


def chain_psnr_evidence(psnr: torch.Tensor, confidence: float = 0.95) -> dict:
    """PSNR gain along the chain with intervals over test digits (paired by digit).

    psnr: (K + 1, B) from ``chain_psnr``. Returns
      "gain":   the final image vs the start x_T (better="higher"),
      "best_step", "best_gain": the step with the highest mean PSNR and its gain over x_T,
      "drift":  the final image vs that best step (better="higher": CONTRADICTED means the
                chain walks away from the digit after its best step — an under-trained one-step
                denoiser applied T times).
    """
    if psnr.dim() != 2 or psnr.shape[0] < 2:
        raise UserError(f"chain PSNRs must be (steps + 1, digits) with at least one step, got {tuple(psnr.shape)}")
    rows = psnr.double()
    means = rows.mean(1)
    best = int(means.argmax())
    start, end = rows[0].tolist(), rows[-1].tolist()
    kw = dict(better="higher", confidence=confidence, what="test digits")
    return {"mean_psnr": means.tolist(), "gain": compare(start, end, **kw), "best_step": best,
            "best_gain": compare(start, rows[best].tolist(), **kw), "drift": compare(rows[best].tolist(), end, **kw)}
