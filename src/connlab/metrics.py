"""Image-quality numbers: BCE, MSE, PSNR and SSIM, in plain PyTorch.

All take images in [0, 1] of shape (N, C, H, W) and return Python floats, averaged over
images (PSNR and SSIM are computed per image, then averaged).

PSNR and SSIM are written out here rather than taken from torchmetrics: importing torchmetrics
pulls in scipy and matplotlib and costs seconds at every command's start, for two formulas of a
few lines. They follow torchmetrics' definitions (SSIM: Wang et al. 2004, an 11×11 Gaussian
window with σ = 1.5, reflection padding, k1 = 0.01, k2 = 0.03) and are tested equal to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of probabilities ``pred`` against ``target``, in float32.

    Safe inside a bf16 autocast region (the trainer evaluates under one on CUDA), where
    PyTorch refuses ``F.binary_cross_entropy``: autocast is switched off around it.
    A ``pred`` holding NaN (a diverged model) gives NaN, which the trainer's guard reports, instead of
    the exception ``F.binary_cross_entropy`` raises for values outside [0, 1].
    """
    with torch.autocast(pred.device.type, enabled=False):
        pred = pred.float()
        if not bool(pred.isfinite().all()):
            return torch.tensor(float("nan"), device=pred.device)
        return F.binary_cross_entropy(pred, target.float())


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """BCE, MSE, PSNR (dB) and SSIM of ``pred`` against ``target``."""
    pred, target = pred.float().clamp(0, 1), target.float()
    return {
        "bce": bce(pred, target).item(),
        "mse": F.mse_loss(pred, target).item(),
        "psnr": psnr_per_image(pred, target).mean().item(),
        "ssim": ssim_per_image(pred, target).mean().item(),
    }


def _gaussian(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``size`` taps, (size,)."""
    x = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0, dtype=like.dtype, device=like.device)
    g = torch.exp(-((x / sigma) ** 2) / 2)
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H + k − 1, W + k − 1) filtered by the 2-D Gaussian g gᵀ without padding → (B, C, H, W).

    The filter is separable, so it is two matrix products with banded matrices, M_H · x · M_Wᵀ, where
    row i of M holds g at columns i … i + k − 1: the same sums as a k×k convolution, at GEMM speed.
    """
    def band(n_out: int) -> torch.Tensor:  # (n_out, n_out + k - 1)
        k = len(g)
        m = torch.zeros(n_out, n_out + k - 1, dtype=g.dtype, device=g.device)
        for i in range(k):
            m.diagonal(i)[:] = g[i]
        return m

    k = len(g)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    return band(h) @ x @ band(w).T


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
                   k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity of each image (Wang et al. 2004): (N, C, H, W) -> (N,).

    Local means, variances and the covariance come from a Gaussian window (side ``2·int(3.5σ + 0.5) + 1``,
    11 for σ = 1.5, applied as two 1-D passes) over reflection-padded images; SSIM = (2 μ_p μ_t + c1)(2 σ_pt + c2) /
    ((μ_p² + μ_t² + c1)(σ_p² + σ_t² + c2)) at every pixel, averaged over the image.
    """
    size = int(3.5 * sigma + 0.5) * 2 + 1
    pad = (size - 1) // 2
    pred, target = (F.pad(x.float(), (pad, pad, pad, pad), mode="reflect") for x in (pred, target))
    stacked = torch.cat((pred, target, pred * pred, target * target, pred * target))  # (5N, C, H + 2p, W + 2p)
    mu_p, mu_t, pp, tt, pt = _blur(stacked, _gaussian(size, sigma, pred)).split(len(pred))  # each (N, C, H, W)
    var_p = (pp - mu_p ** 2).clamp_min(0.0)
    var_t = (tt - mu_t ** 2).clamp_min(0.0)
    cov = pt - mu_p * mu_t
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return ssim.flatten(1).mean(1)


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each image: (N, ...) -> (N,)."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else 0.0)
