"""connlab.metrics computes PSNR and SSIM itself (no torchmetrics import at start-up): parity with torchmetrics."""

import pytest
import torch

from connlab.metrics import image_metrics, psnr_per_image, ssim_per_image


def _pairs():
    g = torch.Generator().manual_seed(0)
    from connlab.data import load_dataset, to_unit

    digits = to_unit(load_dataset("mnist-embedded", limit=20).train_images[:8])  # (8, 1, 28, 28) real digits
    noisy = (digits + 0.3 * torch.randn(digits.shape, generator=g)).clamp(0, 1)
    yield "digits vs noisy digits", noisy, digits
    yield "uniform noise", torch.rand(5, 1, 28, 28, generator=g), torch.rand(5, 1, 28, 28, generator=g)
    yield "three channels, not square", torch.rand(3, 3, 20, 33, generator=g), torch.rand(3, 3, 20, 33, generator=g)


@pytest.mark.parametrize("name, pred, target", list(_pairs()), ids=lambda v: v if isinstance(v, str) else "")
def test_psnr_and_ssim_equal_torchmetrics(name, pred, target):
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    ours = ssim_per_image(pred, target)
    theirs = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    assert torch.allclose(ours, theirs, atol=1e-6), (ours, theirs)
    theirs_psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, dim=(1, 2, 3), reduction="none")
    assert torch.allclose(psnr_per_image(pred, target), theirs_psnr, atol=1e-4)
    m = image_metrics(pred, target)
    assert m["ssim"] == pytest.approx(structural_similarity_index_measure(pred, target, data_range=1.0).item(), abs=1e-6)
    assert m["psnr"] == pytest.approx(theirs_psnr.mean().item(), abs=1e-4)


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ssim_per_image(x, x), torch.ones(4), atol=1e-6)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    assert (ssim_per_image(noisy, x) < 0.9).all()
