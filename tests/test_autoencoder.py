import json

import pytest
import torch

from connlab.cli import main
from connlab.models.autoencoder import (
    AutoencoderConfig, DenoisingAutoencoder, count_parameters, sequential_autoencoder,
)
from tests.learning import denoiser_learned


@pytest.mark.parametrize("skip, params", [("none", 296_449), ("concat", 370_753), ("add", 296_449)])
def test_parameter_counts_match_the_lectures_keras_model(skip, params):
    assert count_parameters(DenoisingAutoencoder(AutoencoderConfig(skip))) == params


@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
def test_sequential_equals_functional_without_skips(upsample):
    functional = DenoisingAutoencoder(AutoencoderConfig("none", upsample))
    sequential = sequential_autoencoder(upsample)
    assert count_parameters(sequential) == count_parameters(functional)
    with torch.no_grad():
        for dst, src in zip(sequential.parameters(), functional.parameters()):
            dst.copy_(src)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(sequential(x), functional(x), atol=1e-6)


def test_skips_change_what_the_decoder_sees():
    torch.manual_seed(0)
    none = DenoisingAutoencoder(AutoencoderConfig("none"))
    torch.manual_seed(0)
    add = DenoisingAutoencoder(AutoencoderConfig("add"))  # same shapes, so same initial weights
    x = torch.rand(2, 1, 28, 28)
    assert not torch.allclose(none(x), add(x))
    assert DenoisingAutoencoder(AutoencoderConfig("concat", "transpose"))(x).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="skip 'dense'"):
        AutoencoderConfig("dense")


def test_autoencoder_cli_trains_compares_and_iterates(tmp_path, capsys):
    out = tmp_path / "run"
    # 60 steps of 32 digits: enough for every variant to beat the mean image by > 1 dB
    # (measured 14.0-18.2 dB against 11.9 dB on the embedded test digits).
    code = main(["autoencoder", "--skip", "all", "--epochs", "1", "--limit", "1920", "--batch-size", "32",
                 "--iterate", "2", "--seeds", "2", "--device", "cpu", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    baselines = summary["baselines"]
    for skip in ("none", "concat", "add"):
        v = summary["variants"][skip]
        for key in ("params", "test_bce", "test_mse", "test_psnr", "test_ssim", "train_seconds",
                    "train_images_per_second"):
            assert key in v
        assert len(v["seeds"]) == 2 and v["test_bce_std"] >= 0
        for run in v["seeds"]:
            assert denoiser_learned(run["test_psnr"], baselines), (skip, run["test_psnr"], baselines)
    # ... and the same check fails for untrained networks on the same noisy test digits
    for skip, psnr in untrained_psnr(baselines).items():
        assert not denoiser_learned(psnr, baselines), (skip, psnr)
    assert [c["variant"] for c in summary["comparison"]] == ["concat", "add"]
    # each skip vs none, paired by seed, stored as an Evidence dict the section only reads
    from connlab.evidence import VERDICTS, Evidence
    from connlab.experiments.autoencoder import section
    from connlab.experiments.section import load_run

    for skip in ("concat", "add"):
        for metric in ("psnr", "bce"):
            ev = Evidence.from_dict(summary["evidence"][skip][metric])
            assert ev.n == 2 and ev.verdict in VERDICTS and ev.method == "paired t over 2 seeds"
    # the clipped noisy input's BCE is the log clamp: not shown as a number, the note says why
    assert baselines["noisy_input"]["bce"] is None and "clamp" in baselines["noisy_input"]["bce_note"]
    assert baselines["mean_image"]["bce"] > 0
    assert len(summary["iterate"]["concat"]) == 2
    assert Evidence.from_dict(summary["iterate"]["evidence"]["concat"]).n == summary["test_images"]   # per digit
    sec = section(load_run(out))
    assert sec.verdict_text.count("rule: ") == 4 and "n = 2" in sec.verdict_text
    assert any("(A)" in n or "(B)" in n or "(C)" in n for n in sec.notes)
    for name in ("reconstructions.png", "loss_curves.png", "iterate.png", "comparison.md", "comparison.json"):
        assert (out / name).stat().st_size > 0
    assert "skip=concat" in (out / "comparison.md").read_text()
    metrics = (out / "variants" / "none-seed0" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1 and "test_bce" in json.loads(metrics[0])
    # the later seeds skip the per-epoch test curve (only the first seed's is drawn)
    later = (out / "variants" / "none-seed1" / "metrics.jsonl").read_text().splitlines()
    assert len(later) == 1 and "test_bce" not in json.loads(later[0])
    # a finished run resumed is loaded, not retrained, and gives the same numbers
    assert main(["autoencoder", "--resume", "--out", str(out)]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["variants"]["concat"]["test_bce"] == summary["variants"]["concat"]["test_bce"]


def untrained_psnr(baselines: dict) -> dict:
    """PSNR of freshly initialised networks on the experiment's fixed noisy test set."""
    from connlab.data import corrupt, load_dataset, to_unit
    from connlab.experiments.autoencoder import EVAL_SEED
    from connlab.metrics import image_metrics

    clean = to_unit(load_dataset("mnist-embedded", None, 100).test_images)
    noisy = corrupt(clean, 0.5, "norm", torch.Generator().manual_seed(EVAL_SEED))
    # the same test set as the run's: the noisy-input baseline agrees
    assert image_metrics(noisy, clean)["psnr"] == pytest.approx(baselines["noisy_input"]["psnr"], abs=1e-4)
    out = {}
    for skip in ("none", "concat", "add"):
        torch.manual_seed(0)
        with torch.no_grad():
            out[skip] = image_metrics(torch.sigmoid(DenoisingAutoencoder(AutoencoderConfig(skip))(noisy)), clean)["psnr"]
    return out


def test_summary_table(capsys):
    assert main(["autoencoder", "--summary", "--skip", "concat"]) == 0
    out = capsys.readouterr().out
    assert "370,753" in out and "Conv2d" in out


@pytest.mark.parametrize("args, needle", [
    (["--noise", "-0.1"], "--noise"),
    (["--noise", "abc"], "--noise"),
    (["--skip", "dense"], "--skip"),
    (["--iterate", "-1"], "--iterate"),
    (["--epochs", "0"], "--epochs"),
    (["--resume", "--out", "/nonexistent/run"], "no such run folder"),
])
def test_autoencoder_bad_input(args, needle, capsys):
    assert main(["autoencoder", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_new_run_refuses_a_folder_that_holds_one(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["autoencoder", "--out", str(tmp_path), "--epochs", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "config.json").read_text() == "{}"
