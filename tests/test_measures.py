"""connlab.measures on tiny synthetic inputs whose answers are known."""

import math

import numpy as np
import pytest
import torch

from connlab.diffusion import ddim_x0_path
from connlab.errors import UserError
from connlab.evidence import CONTRADICTED, NOT_SUPPORTED, SUPPORTED
from connlab.measures import (attention_ink_ratio, attention_on_strokes, baseline_bce, chain_psnr,
                              chain_psnr_evidence, clamped_bce, classifier_features,
                              frechet_bootstrap, frechet_from_features, image_baselines, structure_first,
                              vit_attention_ink_ratio, within_margin)


def test_image_baselines_known_psnr():
    clean = torch.full((4, 1, 8, 8), 0.75)
    noisy = clean - 0.1                       # mse 0.01 -> 20 dB
    train = torch.full((10, 1, 8, 8), 0.25)   # mean image 0.25: mse 0.25 -> 6.02 dB
    out = image_baselines(clean, noisy, train)
    assert out["noisy_input"]["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert out["mean_image"]["psnr"] == pytest.approx(10 * math.log10(4), abs=1e-3)
    assert 0 <= out["mean_image"]["ssim"] < out["noisy_input"]["ssim"] <= 1


def test_bce_states_the_clamp():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1.0
    honest = clamped_bce(torch.full_like(target, 0.5), target)
    assert honest["bce"] == pytest.approx(math.log(2), rel=1e-5)
    assert honest["clamp_share"] == 0 and baseline_bce(torch.full_like(target, 0.5), target) == pytest.approx(math.log(2))
    pred = target.clone()
    pred[..., 0, 0] = 0.0                     # one inked pixel predicted exactly 0
    pred[..., 2:, :] = 0.1                    # the rest honest
    scores = clamped_bce(pred, target)
    assert scores["clamped_pixels"] == pytest.approx(1 / 16)
    assert scores["clamp_share"] > 0.9 and "clamped at -100" in scores["note"]
    assert scores["bce"] == pytest.approx(torch.nn.functional.binary_cross_entropy(pred, target).item(), rel=1e-5)
    assert baseline_bce(pred, target) is None


def test_attention_ink_ratio_known_cases():
    images = torch.zeros(3, 1, 4, 4)
    images[:, :, :2, :2] = 1.0                # ink in the top-left of 2 x 2 patches: area share 1/4
    images[2] = 0.0                           # a blank digit: no contrast
    on_ink = torch.tensor([1.0, 0.0, 0.0, 0.0])
    even = torch.full((4,), 0.25)
    rel = torch.stack([on_ink, even, even])
    ratio = attention_ink_ratio(rel, images, patch=2)
    assert ratio[0].item() == pytest.approx(4.0) and ratio[1].item() == pytest.approx(1.0)
    assert math.isnan(ratio[2].item())
    ev = attention_on_strokes(torch.tensor([1.5, 1.6, 1.4, 1.55, float("nan")]))
    assert ev.verdict == SUPPORTED and ev.n == 4
    assert attention_on_strokes(torch.tensor([1.0, 0.95, 1.05, 1.0])).verdict == NOT_SUPPORTED
    with pytest.raises(UserError, match="patches"):
        attention_ink_ratio(torch.ones(3, 9), images, patch=2)


def test_vit_attention_ink_ratio_runs_on_a_tiny_vit():
    from connlab.models.vit import ViT, ViTConfig, attention_rollout, patch_relevance

    torch.manual_seed(0)
    model = ViT(ViTConfig(dim=16, depth=2, heads=2, stem_channels=8))
    images = torch.zeros(5, 1, 28, 28)
    images[:, :, 8:20, 12:16] = 1.0           # a "1"
    ratio = vit_attention_ink_ratio(model, images)
    assert ratio.shape == (5,) and torch.isfinite(ratio).all()
    model.eval()
    model(images)
    rel = patch_relevance(attention_rollout(model.attention_maps()), True)
    assert torch.allclose(ratio, attention_ink_ratio(rel, images, patch=4))


def test_ddim_x0_path_with_an_oracle_network_predicts_the_digit_at_every_step():
    from connlab.diffusion.samplers import sample_ddim
    from connlab.diffusion.schedule import NoiseSchedule

    schedule = NoiseSchedule.linear(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    x_T = torch.randn(3, 1, 8, 8, generator=g)
    sab, s1 = schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar

    def oracle(x, t):  # the ε that makes x̂₀ exactly x0
        return (x - sab[t].view(-1, 1, 1, 1) * x0) / s1[t].view(-1, 1, 1, 1)

    path = ddim_x0_path(oracle, schedule, x_T, 10)
    assert path.shape == (10, 3, 1, 8, 8)
    assert torch.allclose(path, x0.expand_as(path), atol=1e-4)

    def net(x, t):  # any network: the last x̂₀ is the sampler's output
        return 0.3 * x + 0.01 * t.view(-1, 1, 1, 1).float()

    path = ddim_x0_path(net, schedule, x_T, 10)
    final = sample_ddim(net, schedule, x_T.shape, 10, 0.0, torch.Generator(), x_T=x_T)
    assert torch.allclose(path[-1], final, atol=1e-5)


def test_structure_first_finds_the_step_where_labels_settle():
    S, B = 10, 20
    final = torch.arange(B) % 10
    labels = final.repeat(S, 1)
    labels[:4] = (final + 1) % 10             # steps 0-3: wrong for everyone
    labels[4, :3] = 0                         # step 4: 3 of 20 still wrong (85 % < 90 %)
    labels[4, :3] = (final[:3] + 1) % 10
    labels[6, 0] = (final[0] + 1) % 10        # step 6: 95 % agree, still >= 90 %
    x0 = torch.zeros(S, B, 1, 2, 2)
    for k in range(S):
        x0[k] = 1.0 - 0.1 * (S - 1 - k)       # pixels approach 1 linearly
    out = structure_first(labels, x0)
    assert out["structure_step"] == 5 and out["structure_fraction"] == pytest.approx(0.6)
    assert out["agreement"][4] == pytest.approx(0.85) and out["agreement"][6] == pytest.approx(0.95)
    assert out["mean_abs_change_after"] == pytest.approx(0.4)
    assert out["relative_l2_change_after"] == pytest.approx(0.4)


def test_frechet_from_features_matches_scipy_and_torchmetrics():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = torch.tensor(rng.normal(0, 1, (300, 4)))
    b = torch.tensor(rng.normal(0.5, 1.3, (250, 4)))
    ca, cb = np.cov(a.numpy().T), np.cov(b.numpy().T)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert frechet_from_features(a, b) == pytest.approx(ref, rel=1e-6)

    from connlab.models.classifier import ClassifierConfig, MnistClassifier
    from connlab.quality import frechet_distance

    torch.manual_seed(0)
    clf = MnistClassifier(ClassifierConfig(feature_dim=8)).eval()
    real, fake = torch.rand(40, 1, 28, 28), torch.rand(30, 1, 28, 28) * 0.5
    direct = frechet_from_features(classifier_features(real, clf), classifier_features(fake, clf))
    assert direct == pytest.approx(frechet_distance(real, fake, clf), rel=1e-3, abs=1e-4)


def test_frechet_bootstrap_and_margin():
    rng = np.random.default_rng(1)
    real = torch.tensor(rng.normal(0, 1, (400, 3)))
    ddpm = torch.tensor(rng.normal(0, 1, (200, 3)))
    same = torch.tensor(rng.normal(0, 1, (200, 3)))
    worse = torch.tensor(rng.normal(1.0, 1, (200, 3)))   # FD ≈ 3 higher
    ev = frechet_bootstrap(real, ddpm, worse, resamples=100)
    assert ev.verdict == CONTRADICTED and ev.effect == pytest.approx(3.0, abs=1.0)
    tie = frechet_bootstrap(real, ddpm, same, resamples=100)
    assert tie.verdict == NOT_SUPPORTED
    assert within_margin(tie, margin=1.0) == SUPPORTED
    assert within_margin(ev, margin=1.0) == CONTRADICTED


def test_chain_psnr_evidence_sees_the_gain_and_the_walk_away():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(50, 1, 6, 6, generator=g)
    noise = torch.randn(50, 1, 6, 6, generator=g)
    # the chain gets closer to the clean digits for 3 steps, then drifts away again
    scales = [0.5, 0.3, 0.15, 0.08, 0.2, 0.4]
    chain = torch.stack([clean + s * noise for s in scales])
    psnr = chain_psnr(chain, clean)
    assert psnr.shape == (6, 50)
    out = chain_psnr_evidence(psnr)
    assert out["best_step"] == 3
    assert out["best_gain"].verdict == SUPPORTED and out["best_gain"].method == "paired t over 50 test digits"
    assert out["drift"].verdict == CONTRADICTED   # the last image is worse than the best one
    assert out["gain"].verdict == SUPPORTED       # still better than x_T (0.4 < 0.5)


def test_an_untrained_vit_does_not_look_at_the_strokes():
    # The rule's control: untrained attention rollout spreads evenly (ratio ≈ 1), so the claim
    # with the practical threshold 1.1 is not supported for it.
    from connlab.data import load_dataset, to_unit
    from connlab.models.vit import ViT, ViTConfig

    torch.manual_seed(0)
    model = ViT(ViTConfig(dim=32, depth=2, heads=2, stem_channels=16))
    images = to_unit(load_dataset("mnist-embedded", None, 100).test_images[:200])
    ratios = vit_attention_ink_ratio(model, images)
    assert abs(ratios.nanmean().item() - 1) < 0.05
    assert attention_on_strokes(ratios, threshold=1.1).verdict == CONTRADICTED
