"""connlab classifier / quality / diffusion train-sample-eval, at tiny sizes."""

import json

import numpy as np
import pytest
import torch

from connlab.cli import main
from connlab.models.classifier import ClassifierConfig, MnistClassifier
from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
from connlab.quality import frechet_distance, sample_quality


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they save on 2 cores
    yield
    torch.set_num_threads(n)


def test_classifier_features_shape():
    model = MnistClassifier(ClassifierConfig(feature_dim=32)).eval()
    x = torch.rand(5, 1, 28, 28)
    assert model.features(x).shape == (5, 32)
    assert model(x).shape == (5, 10)


def test_frechet_distance_self_zero_and_shift_larger():
    torch.manual_seed(0)
    model = MnistClassifier(ClassifierConfig(feature_dim=16)).eval()
    real = torch.rand(200, 1, 28, 28) * 0.5
    same = frechet_distance(real, real, model)
    shifted = frechet_distance(real, (real + 0.4).clamp(0, 1), model)
    assert abs(same) < 1e-3
    assert shifted > 100 * max(same, 1e-6) and shifted > 1e-2


def test_sample_quality_fields():
    model = MnistClassifier(ClassifierConfig(feature_dim=8)).eval()
    q = sample_quality(torch.rand(20, 1, 28, 28), torch.rand(30, 1, 28, 28), model)
    assert sum(q["class_histogram"]) == 20 and len(q["class_histogram"]) == 10
    assert 0.1 <= q["mean_confidence"] <= 1.0 and 1 <= q["classes_covered"] <= 10


def test_latent_autoencoder_round_trip_shape():
    ae = LatentAutoencoder(LatentAEConfig(latent_channels=4, channels=8)).eval()
    x = torch.rand(3, 1, 28, 28)
    ae.fit_latent_stats(x)
    z = ae.encode(x)
    assert z.shape == (3, 4, 7, 7)
    assert ae.decode(z).shape == (3, 1, 28, 28)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5)  # standardised latents
    assert ae.loss(x, torch.Generator().manual_seed(0)).ndim == 0


TINY = ["--dataset", "mnist-embedded", "--limit", "200", "--epochs", "1", "--batch-size", "64",
        "--base-channels", "8", "--channel-mults", "1", "--timesteps", "20", "--eval-num", "20", "--eval-steps", "5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny classifier run and tiny latent (class-conditional) and pixel diffusion runs."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["classifier", "--dataset", "mnist-embedded", "--limit", "200", "--epochs", "1",
                 "--out", str(root / "clf")]) == 0
    assert main(["diffusion", "train", *TINY, "--space", "latent", "--ae-epochs", "1", "--class-cond",
                 "--classifier", str(root / "clf"), "--out", str(root / "latent")]) == 0
    assert main(["diffusion", "train", *TINY, "--space", "pixel", "--no-attention", "--classifier", str(root / "clf"),
                 "--out", str(root / "pixel")]) == 0
    return root


def test_train_sample_eval_path(runs, capsys):
    latent = runs / "latent"
    summary = json.loads((latent / "summary.json").read_text())
    assert summary["classifier"]["source"] == "given (--classifier)"
    assert {"frechet_distance", "mean_confidence", "class_histogram"} <= set(summary["quality"])
    assert (latent / "samples.png").is_file() and (latent / "trajectory.png").is_file()
    npz = runs / "s.npz"
    assert main(["diffusion", "sample", "--run", str(latent), "--sampler", "ddim", "--steps", "5", "--num", "12",
                 "--guidance", "1.5", "--save-npz", str(npz)]) == 0
    images = np.load(npz)["images"]
    assert images.dtype == np.uint8 and images.shape == (12, 28, 28)
    assert main(["diffusion", "eval", "--run", str(runs / "pixel"), "--num", "10"]) == 0
    table = capsys.readouterr().out
    assert "DDIM | 10 |" in table and "DDPM | 20 |" in table and "floor" in table
    result = json.loads((runs / "pixel" / "eval.json").read_text())
    assert [(r["sampler"], r["steps"]) for r in result["rows"]] == [("ddim", 10), ("ddim", 20), ("ddpm", 20)]
    assert (runs / "pixel" / "eval.md").is_file()


@pytest.mark.parametrize("argv", [
    ["--steps", "21"],            # > T = 20
    ["--steps", "0"],             # < 1
    ["--eta", "-0.5"],            # negative η
    ["--guidance", "2"],          # unconditional run
    ["--sampler", "ddpm", "--steps", "5"],  # DDPM runs all T steps
])
def test_bad_sample_input_exits_2(runs, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(["diffusion", "sample", "--run", str(runs / "pixel"), "--num", "2", *argv])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_sampling_from_non_diffusion_run_exits_2(runs, capsys):
    assert main(["diffusion", "sample", "--run", str(runs / "clf"), "--num", "2"]) == 2
    assert "not a diffusion run" in capsys.readouterr().err
    assert main(["diffusion", "sample", "--run", str(runs / "missing"), "--num", "2"]) == 2
