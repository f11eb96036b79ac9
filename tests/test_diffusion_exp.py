"""connlab classifier / quality / diffusion train-sample-eval, at tiny sizes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from connlab.cli import main
from connlab.models.classifier import ClassifierConfig, MnistClassifier
from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
from connlab.quality import frechet_distance, sample_quality
from tests.learning import classifier_learned


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


def test_quality_classifier_learns(tmp_path):
    """62 steps of 64 digits: the quality classifier well above chance (measured 90 %); untrained it is not."""
    from connlab.data import load_dataset, to_unit

    out = tmp_path / "clf"
    assert main(["classifier", "--dataset", "mnist-embedded", "--limit", "2000", "--epochs", "2", "--batch-size", "64",
                 "--device", "cpu", "--out", str(out)]) == 0
    accuracy = json.loads((out / "summary.json").read_text())["test_accuracy"]
    assert classifier_learned(accuracy, chance=0.1, margin=0.5), accuracy
    torch.manual_seed(0)
    data = load_dataset("mnist-embedded", None, 100)
    with torch.no_grad():
        logits = MnistClassifier(ClassifierConfig()).eval()(to_unit(data.test_images))
    assert not classifier_learned((logits.argmax(1) == data.test_labels).float().mean().item(), chance=0.1, margin=0.5)


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
    assert main(["diffusion", "train", *TINY, "--space", "pixel", "--no-attention", "--no-class-cond",
                 "--classifier", str(root / "clf"), "--out", str(root / "pixel")]) == 0
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
    # T = 20 has no DDIM-50 row: the "far fewer steps" claim is not measured, and the page says so
    assert "fewer_steps" not in result
    structure = summary["structure_first"]
    assert structure["num"] == 100 and structure["steps"] == 20 and len(structure["agreement"]) == 20
    assert structure["agreement"][-1] == 1.0 and structure["verdict"] in ("supported", "not supported at this budget")
    from connlab.experiments.diffusion import section
    from connlab.experiments.section import load_run

    sec = section(load_run(runs / "pixel"))
    assert sec.verdict != "supported" and "rerun" in sec.effect and "non-inferiority" in sec.rule


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


def test_presets_and_default_guidance(runs, capsys):
    import argparse

    from connlab.experiments.diffusion import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = lambda *a: config_from_args(parser.parse_args(["train", *a]))  # noqa: E731
    assert (cfg().class_cond, cfg().guidance, cfg().epochs, cfg().ae_epochs) == (True, 1.0, 40, 16)  # CPU default
    assert (cfg("--no-class-cond").class_cond, cfg("--no-class-cond").guidance) == (False, None)
    assert cfg("--guidance", "0.5").guidance == 0.5
    assert (cfg("--preset", "demo").class_cond, cfg("--preset", "demo").guidance) == (True, 2.0)
    assert (cfg("--preset", "pixel").class_cond, cfg("--preset", "pixel").guidance) == (False, None)
    assert main(["diffusion", "train", "--no-class-cond", "--guidance", "1", "--out", str(runs / "never")]) == 2
    assert "class-conditional" in capsys.readouterr().err and not (runs / "never").exists()
    # the tiny latent run took the default preset's w = 1: its score, sample and eval use it unless told
    assert json.loads((runs / "latent" / "summary.json").read_text())["quality"]["guidance"] == 1.0
    assert main(["diffusion", "sample", "--run", str(runs / "latent"), "--steps", "3", "--num", "4"]) == 0
    assert "guidance w = 1" in capsys.readouterr().out and (runs / "latent" / "samples-ddim3-w1.png").is_file()


def test_sampling_from_non_diffusion_run_exits_2(runs, capsys):
    assert main(["diffusion", "sample", "--run", str(runs / "clf"), "--num", "2"]) == 2
    assert "not a diffusion run" in capsys.readouterr().err
    assert main(["diffusion", "sample", "--run", str(runs / "missing"), "--num", "2"]) == 2


# --- the side-by-side page: the Exercise-2 ladder and DDPM from the same noise -----------------

def _in_memory(space: str):
    """A random-weight Generator (pixel or latent, T = 20) and ladder (T = 3): no training needed."""
    from connlab.sampling.generate import Generator
    from connlab.diffusion.sidebyside import Ladder
    from connlab.experiments.diffusion import DiffusionExperiment
    from connlab.models.diffusion_unet import DiffusionUNet
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet

    torch.manual_seed(0)
    cfg = DiffusionExperiment(space=space, timesteps=20, base_channels=8, channel_mults=(1,), attention=False)
    decoder = LatentAutoencoder(LatentAEConfig(latent_channels=4, channels=8)).eval() if space == "latent" else None
    gen = Generator(cfg, DiffusionUNet(cfg.unet_config()).eval(), decoder, torch.device("cpu"))
    ladder = Ladder(StepConditionedUNet(StepConditionConfig("none", 3)).eval(), "T3-none", 3, Path("ladder"), {})
    return gen, ladder


@pytest.mark.parametrize("space", ["pixel", "latent"])
def test_sampling_speed_settings_keep_the_samples(space):
    """The sampling fast path on CPU (channels-last) draws the same digits as the plain path, from the
    same random numbers the samplers draw themselves (x_T first, then each DDPM step's noise)."""
    import copy

    from connlab.diffusion import sample_ddim, sample_ddpm
    from connlab.runtime.speed import Speed
    from connlab.sampling.generate import Generator

    fast, _ = _in_memory(space)  # the default Speed
    assert fast.model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    model = copy.deepcopy(fast.model).to(memory_format=torch.contiguous_format)
    plain = Generator(fast.cfg, model, fast.decoder, torch.device("cpu"), Speed(channels_last="off"))
    assert plain.model.stem.weight.is_contiguous()
    clip, pred = space == "pixel", plain.cfg.prediction
    for sampler, steps, eta in [("ddim", 5, 0.0), ("ddim", 5, 1.0), ("ddpm", None, 0.0)]:
        a = plain.sample(sampler, steps, 7, eta, seed=4, chunk=4)  # two chunks: 4 and 3 samples
        g = torch.Generator().manual_seed(4)
        direct = [sample_ddpm(plain.model_fn(n, None), plain.schedule, (n, *plain.shape), g, pred, clip)
                  if sampler == "ddpm" else
                  sample_ddim(plain.model_fn(n, None), plain.schedule, (n, *plain.shape), steps, eta, g, pred, clip)
                  for n in (4, 3)]
        assert torch.allclose(a, plain.to_images(torch.cat(direct)), atol=1e-6)
        b = fast.sample(sampler, steps, 7, eta, seed=4, chunk=4)
        assert torch.allclose(a, b, atol=1e-4), (sampler, eta, (a - b).abs().max())


@pytest.mark.parametrize("argv, message", [
    (["--cuda-graph", "on", "--device", "cpu"], "--cuda-graph on needs a CUDA device"),
    (["--precision", "fp16"], "invalid choice"),
])
def test_bad_speed_flags_exit_2(runs, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["diffusion", "sample", "--run", str(runs / "pixel"), "--num", "2", *argv]))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_sampling_speed_refuses_unknown_values():
    from connlab.runtime.speed import Speed
    from connlab.errors import UserError

    with pytest.raises(UserError, match="--compile 'yes' is not one of auto, on, off"):
        Speed(compile="yes")
    with pytest.raises(UserError, match="--precision 'fp16'"):
        Speed(precision="fp16")


def test_one_noise_draw_maps_onto_each_start():
    from connlab.diffusion.sidebyside import ddpm_start, ladder_start, shared_noise

    z = shared_noise(400, seed=3, device="cpu")
    assert torch.equal(z, shared_noise(400, seed=3, device="cpu"))
    u = ladder_start(z)                                     # Φ(z): U(0, 1), monotone in z
    assert 0 < u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.002
    flat = z.flatten()
    order = flat.argsort()
    assert bool((u.flatten()[order].diff() >= 0).all())
    assert ddpm_start(z, (1, 28, 28)) is z                  # pixel DDPM: z itself
    lat = ddpm_start(z, (4, 7, 7))                          # latent DDPM: ½ · row c of each 4×4 patch
    assert lat.shape == (400, 4, 7, 7)
    assert torch.allclose(lat[:, 2, 5, 3], z[:, 0, 4 * 5 + 2, 4 * 3:4 * 3 + 4].sum(-1) / 2)
    assert abs(lat.mean().item()) < 0.02 and abs(lat.std().item() - 1) < 0.02   # N(0, 1) again


@pytest.mark.parametrize("space", ["pixel", "latent"])
def test_chains_start_from_the_same_noise(space):
    from connlab.diffusion.sidebyside import chains, ddpm_start, ladder_start, shared_noise

    gen, ladder = _in_memory(space)
    z = shared_noise(3, seed=0, device="cpu")
    out = chains(gen, ladder, z, sampler="ddim", steps=4, seed=0)
    assert list(out) == ["ladder T3-none", "DDPM-20", "DDIM-4"]
    assert [tuple(v.shape) for v in out.values()] == [(4, 3, 1, 28, 28), (21, 3, 1, 28, 28), (5, 3, 1, 28, 28)]
    assert torch.equal(out["ladder T3-none"][0], ladder_start(z))
    with torch.no_grad():
        start = gen.to_images(ddpm_start(z, gen.shape))
    assert torch.allclose(out["DDPM-20"][0], start) and torch.allclose(out["DDIM-4"][0], start)
    assert list(chains(gen, ladder, z, sampler="ddpm", seed=0)) == ["ladder T3-none", "DDPM-20"]


def test_side_by_side_page_is_self_contained(tmp_path):
    """The chains are computed and stored once (sidebyside.json); the page is rendered from that file alone."""
    import re

    from connlab.report.sidebyside import write_side_by_side
    from connlab.sampling.sidebyside import COLUMNS, store_side_by_side

    gen, ladder = _in_memory("latent")
    data = store_side_by_side(gen, ladder, tmp_path, sampler="ddim", steps=5, num=2)
    assert data == tmp_path / "sidebyside.json"
    assert (tmp_path / "sidebyside.png").read_bytes()[:4] == b"\x89PNG"
    page = write_side_by_side(tmp_path)
    text = page.read_text()
    # per draw: the ladder's T + 1 = 4 states, DDPM's COLUMNS of 21, DDIM-5's 6
    assert text.count("<img ") == 2 * (4 + COLUMNS + 6)
    assert text.count('src="data:image/png;base64,') == text.count("<img ")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text) and "url(" not in text
    assert "Φ(z)" in text and "4×4 pixel patch" in text
    assert write_side_by_side(tmp_path / "nothing-here") is None  # a folder without stored chains: no page


def test_side_by_side_page_refuses_a_corrupt_file(tmp_path):
    from connlab.errors import UserError
    from connlab.report.sidebyside import write_side_by_side

    (tmp_path / "sidebyside.json").write_text("{\"num\": 2")
    with pytest.raises(UserError, match="sidebyside.json: corrupt JSON"):
        write_side_by_side(tmp_path)
    (tmp_path / "sidebyside.json").write_text("{}")
    with pytest.raises(UserError, match="sidebyside.json: not the chains"):
        write_side_by_side(tmp_path)


@pytest.fixture(scope="module")
def ladder_run(runs):
    assert main(["ladder", "--dataset", "mnist-embedded", "--steps", "3", "--epochs", "1", "--limit", "200",
                 "--batch-size", "64", "--eval-images", "20", "--out", str(runs / "ladder")]) == 0
    return runs / "ladder"


def test_sample_with_ladder_run_stores_the_chains_and_the_report_renders_them(runs, ladder_run, capsys):
    assert main(["diffusion", "sample", "--run", str(runs / "pixel"), "--sampler", "ddim", "--steps", "5",
                 "--num", "4", "--ladder-run", str(ladder_run)]) == 0
    assert "side-by-side chains" in capsys.readouterr().out
    assert (runs / "pixel" / "sidebyside.json").is_file() and (runs / "pixel" / "sidebyside.png").is_file()
    assert main(["report", str(runs / "pixel"), "--out", str(runs / "pixel-report.html")]) == 0
    text = (runs / "pixel" / "sidebyside.html").read_text()
    assert "ladder T3-none" in text and "DDPM-20" in text and "DDIM-5" in text and "x<sub>T</sub> = z itself" in text


@pytest.mark.parametrize("case", ["diffusion run", "missing", "variant", "unfinished"])
def test_bad_ladder_run_exits_2(runs, ladder_run, case, tmp_path, capsys):
    import shutil

    target, extra = {"diffusion run": (runs / "latent", []), "missing": (tmp_path / "nope", []),
                     "variant": (ladder_run, ["--ladder-variant", "T9-none"]),
                     "unfinished": (tmp_path / "unfinished", [])}[case]
    if case == "unfinished":
        shutil.copytree(ladder_run, target)
        (target / "summary.json").unlink()
    capsys.readouterr()
    assert main(["diffusion", "sample", "--run", str(runs / "pixel"), "--num", "2", "--ladder-run", str(target),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert {"diffusion run": "not a ladder run", "missing": "no such run folder", "variant": "T3-none",
            "unfinished": "did not finish"}[case] in err
    assert not list((runs / "pixel").glob("samples-ddim20.png"))  # refused before sampling


def test_side_by_side_page_in_headless_chromium(runs, ladder_run, tmp_path):
    from tests.test_report import CHROMIUM, external_references, open_in_chromium, page_requests

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    page = runs / "pixel" / "sidebyside.html"
    if not page.is_file():
        assert main(["diffusion", "sample", "--run", str(runs / "pixel"), "--sampler", "ddpm", "--num", "2",
                     "--ladder-run", str(ladder_run)]) == 0
        assert main(["report", str(runs / "pixel"), "--out", str(tmp_path / "report.html")]) == 0
    seen = open_in_chromium(page, tmp_path / "profile")
    check = seen["self_check"]
    assert seen["returncode"] == 0 and check is not None, "the page's self-check did not run"
    assert check["images"] > 0 and check["not_loaded"] == []
    assert check["errors"] == [] and seen["console"] == []
    assert check["requests"] == [] and page_requests(seen["proxy_requests"]) == []
    assert not external_references(page.read_text())


def test_demo_passes_the_ladder_run_only_when_the_ladder_part_finished(tmp_path):
    from connlab.demo import command_line, plan

    part = next(p for p in plan(False, "mnist-embedded", None, "cpu") if p.name == "diffusion sample")
    assert "--ladder-run" not in command_line(part, tmp_path)       # no ladder: sample alone
    (tmp_path / "ladder").mkdir()
    (tmp_path / "ladder" / "summary.json").write_text("{}")
    argv = command_line(part, tmp_path)
    assert argv[argv.index("--ladder-run") + 1] == str(tmp_path / "ladder")
    assert argv[argv.index("--run") + 1] == str(tmp_path / "diffusion")


def test_fewer_steps_claim_fails_for_noise(runs):
    """The non-inferiority rule: two sets of real digits differ by an interval around 0; noise is not accepted."""
    from connlab.data import load_dataset, to_unit
    from connlab.sampling.evaluate import fewer_steps_claim
    from connlab.quality import load_classifier

    classifier, _ = load_classifier(runs / "clf")
    data = load_dataset("mnist-embedded", None, 2000)
    digits = to_unit(data.train_images)
    real = to_unit(data.test_images)
    same = fewer_steps_claim(real, digits[:500], digits[500:1000], classifier)
    ev = same["evidence"]
    assert ev["n"] == 500 and ev["low"] <= 0 <= ev["high"] and same["verdict"] != "contradicted", same
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    worse = fewer_steps_claim(real, digits[:500], noise, classifier)
    assert worse["evidence"]["low"] > 0 and worse["verdict"] == "contradicted", worse


def _diffusion_folder(tmp_path, summary, eval_json=None):
    folder = tmp_path / "diffusion-fake"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "diffusion", "config": {}}))
    (folder / "summary.json").write_text(json.dumps(summary))
    if eval_json is not None:
        (folder / "eval.json").write_text(json.dumps(eval_json))
    return folder


def _structure(step, change_low):
    agreement = [0.5] * step + [0.95] * (50 - step)
    return {"agreement": agreement, "structure_step": step, "steps": 50, "structure_fraction": (step + 1) / 50,
            "agree": 0.9, "relative_l2_change_after": change_low + 0.01,
            "relative_l2_interval": [change_low, change_low + 0.02], "num": 100,
            "verdict": "supported" if (step + 1) / 50 <= 0.75 and change_low > 0.05 else "not supported at this budget"}


def _fewer(low, high, verdict):
    from connlab.evidence import Evidence

    ev = Evidence((low + high) / 2, None, low, high, 100, 0.95, "bootstrap", "lower", "not supported at this budget")
    return {"ddim_steps": 50, "ddpm_frechet": 80.0, "ddim_frechet": 80 + ev.effect, "margin": 16.0,
            "margin_share": 0.2, "evidence": ev.as_dict(), "verdict": verdict}


@pytest.mark.parametrize("structure, fewer, verdict", [
    (_structure(25, 0.12), _fewer(-40, 13, "supported"), "supported"),
    (_structure(45, 0.12), _fewer(-40, 13, "supported"), "partly supported"),      # labels settle late
    (_structure(25, 0.12), _fewer(20, 40, "contradicted"), "partly supported"),    # DDIM-50 clearly worse
    (None, None, "partly supported"),        # an old folder: only the sample-quality part can be judged
])
def test_diffusion_verdict_combines_its_three_rules(tmp_path, structure, fewer, verdict):
    from connlab.experiments.diffusion import section
    from connlab.experiments.section import load_run

    summary = {"quality": {"frechet_distance": 70.0, "mean_confidence": 0.95, "classes_covered": 10, "steps": 50},
               "frechet_floor": 14.0}
    if structure is not None:
        summary["structure_first"] = structure
    sec = section(load_run(_diffusion_folder(tmp_path, summary, None if fewer is None else
                                             {"rows": [], "num": 100, "fewer_steps": fewer})))
    assert sec.verdict == verdict
    assert ("rerun" in sec.verdict_text) == (structure is None)
