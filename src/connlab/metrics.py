"""Image-quality numbers: thin wrappers over PyTorch and torchmetrics.

All take images in [0, 1] of shape (N, 1, H, W) and return Python floats, averaged over
images (PSNR and SSIM are computed per image, then averaged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of probabilities ``pred`` against ``target``, in float32.

    Safe inside a bf16 autocast region (the trainer evaluates under one on CUDA), where
    PyTorch refuses ``F.binary_cross_entropy``: autocast is switched off around it.
    """
    with torch.autocast(pred.device.type, enabled=False):
        return F.binary_cross_entropy(pred.float(), target.float())


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """BCE, MSE, PSNR (dB) and SSIM of ``pred`` against ``target``."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    pred, target = pred.float().clamp(0, 1), target.float()
    return {
        "bce": bce(pred, target).item(),
        "mse": F.mse_loss(pred, target).item(),
        "psnr": peak_signal_noise_ratio(pred, target, data_range=1.0, dim=(1, 2, 3)).item(),
        "ssim": structural_similarity_index_measure(pred, target, data_range=1.0).item(),
    }


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each image: (N, ...) -> (N,)."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else 0.0)
